#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "config/experiment.h"
#include "core/error.h"
#include "core/hash.h"
#include "test_support.h"

using namespace normexp;
using namespace normexp::config;
using normexp::testing::TempDir;
using normexp::testing::test_schema;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class ExperimentTest : public ::testing::Test {
 protected:
  Experiment load(const std::string& yaml, const std::vector<std::string>& overrides = {},
                  std::optional<std::int64_t> seed = std::nullopt) {
    return load_experiment(dir_.write("exp.yaml", yaml), overrides, schema_, seed);
  }

  // Loading must fail; returns the error.
  ConfigError fail(const std::string& yaml, const std::vector<std::string>& overrides = {},
                   std::optional<std::int64_t> seed = std::nullopt) {
    try {
      load(yaml, overrides, seed);
    } catch (const ConfigError& e) {
      return e;
    }
    ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
    return ConfigError({});
  }

  std::string file(const std::string& name = "exp.yaml") const {
    return (dir_.path() / name).string();
  }

  TempDir dir_;
  Schema schema_ = test_schema();
};

}  // namespace

TEST_F(ExperimentTest, DefaultsNameFromStemAndSeed) {
  const Experiment e = load("seed: 0\n");
  EXPECT_EQ(e.name, "exp");
  EXPECT_EQ(e.seed, 0);
  EXPECT_EQ(e.source, file());
  EXPECT_EQ(e.section("optim").get_string("name"), "sgd");
  EXPECT_EQ(e.section("optim").get_float("lr"), 0.1);
  EXPECT_EQ(e.section("model").get_int("width"), 64);
  EXPECT_EQ(e.section("train").get_string("device"), "auto");
  EXPECT_FALSE(e.section("model").has("depth"));  // options of other components are absent
  EXPECT_THROW(e.section("nope"), std::out_of_range);
}

TEST_F(ExperimentTest, ValuesNameAndSeedFromFile) {
  const Experiment e = load(
      "name: wrn_run\nseed: 7\nmodel:\n  name: wrn\n  depth: 16\noptim:\n  name: adam\n"
      "  lr: 3e-4\n  betas: [0.8, 0.9]\n");
  EXPECT_EQ(e.name, "wrn_run");
  EXPECT_EQ(e.seed, 7);
  EXPECT_EQ(e.section("model").get_string("name"), "wrn");
  EXPECT_EQ(e.section("model").get_int("depth"), 16);
  EXPECT_EQ(e.section("model").get_int("widen"), 10);
  EXPECT_EQ(e.section("model").where("name"), file() + ":4");
  EXPECT_EQ(e.section("optim").get_float("lr"), 3e-4);
  EXPECT_EQ(e.section("optim").get_float_list("betas"), (std::vector<double>{0.8, 0.9}));
  EXPECT_EQ(e.section("optim").get_float("weight_decay"), 5e-4);  // common option
  EXPECT_FALSE(e.section("optim").has("momentum"));
}

TEST_F(ExperimentTest, MisspelledKeyHasPathFileLineAndSuggestion) {
  const ConfigError e = fail("seed: 1\noptim:\n  lr: 0.1\n  lrr: 0.2\n");
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].where, file() + ":4");
  EXPECT_EQ(e.issues()[0].path, "optim.lrr");
  EXPECT_EQ(std::string(e.what()), file() + ":4: optim.lrr: unknown key (did you mean 'lr'?)");
}

// Section names as timm, Hydra or Lightning configs spell them point at normexp's own.
TEST_F(ExperimentTest, OtherToolsSectionNamesPointAtOurs) {
  const ConfigError e = fail("optimizer: {lr: 0.1}\ndataset: {name: fashion_mnist}\n"
                             "training: {epochs: 3}\nnorm: {name: batchnorm}\n");
  ASSERT_EQ(e.issues().size(), 4u) << e.what();
  const std::string all = e.what();
  for (const char* needle : {":1: optimizer: unknown top-level key (did you mean 'optim'?)",
                             ":2: dataset: unknown top-level key (did you mean 'data'?)",
                             ":3: training: unknown top-level key (did you mean 'train'?)",
                             ":4: norm.name: unknown norm scheme 'batchnorm' (valid: bn, cwo)"}) {
    EXPECT_TRUE(contains(all, needle)) << needle << "\nin:\n" << all;
  }
}

// An option written where another tool keeps it (lr with the training settings or at the top
// level, sigma without its noise group) points at its place in this experiment. Only the chosen
// components' options count (adam's betas, wrn's widen are no suggestion while optim is sgd
// and model cnn9), and a key found in more than three places ("name") gets the valid list.
TEST_F(ExperimentTest, AnOptionInTheWrongPlacePointsAtItsPlace) {
  const ConfigError e = fail(
      "lr: 0.1\n"
      "train:\n  lr: 0.1\n  noise: {sigma: 0.1}\n  betas: [0.9, 0.99]\n  widen: 2\n  name: x\n"
      "norm:\n  sigma: 0.2\n",
      {"optim.epochs=3"});
  ASSERT_EQ(e.issues().size(), 8u) << e.what();
  const std::string all = e.what();
  const std::string train_keys = "(valid: epochs, batch_size, device)";
  for (const std::string& needle :
       {std::string(":1: lr: unknown top-level key (did you mean 'optim.lr'?)"),
        std::string(":3: train.lr: unknown key (did you mean 'optim.lr'?)"),
        std::string(":4: train.noise: unknown key (did you mean 'norm.noise'?)"),
        ":5: train.betas: unknown key " + train_keys, ":6: train.widen: unknown key " + train_keys,
        ":7: train.name: unknown key " + train_keys,
        std::string(":9: norm.sigma: unknown key (did you mean 'norm.noise.sigma'?)"),
        std::string("--set optim.epochs=3: optim.epochs: unknown key (did you mean "
                    "'train.epochs'?)")}) {
    EXPECT_TRUE(contains(all, needle)) << needle << "\nin:\n" << all;
  }
}

TEST_F(ExperimentTest, ReportsEveryIssueAtOnce) {
  const ConfigError e = fail(
      "trian: {epochs: 3}\n"  // unknown top-level key
      "seed: x\n"             // wrong type
      "optim:\n"
      "  lr: abc\n"        // wrong type
      "  momentun: 0.5\n"  // unknown key
      "train:\n"
      "  epochs: -1\n"     // out of range
      "  batch_size: 0\n"  // out of range
      "  device: gpu\n"    // not a choice
      "norm:\n"
      "  noise: {sigma: -0.1}\n"   // out of range
      "model: {name: resnet}\n");  // unknown component
  EXPECT_EQ(e.issues().size(), 9u) << e.what();
  // Top-level keys first, then sections in the order config.yaml lists them.
  std::vector<std::string> paths;
  for (const auto& i : e.issues()) paths.push_back(i.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"trian", "seed", "model.name", "norm.noise.sigma",
                                             "optim.lr", "optim.momentun", "train.epochs",
                                             "train.batch_size", "train.device"}));
  const std::string all = e.what();
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 8);
  for (const char* needle :
       {":1: trian: unknown top-level key (did you mean 'train'?)",
        ":2: seed: expected an integer, got 'x'", ":4: optim.lr: expected a float, got 'abc'",
        ":5: optim.momentun: unknown key (did you mean 'momentum'?)",
        ":7: train.epochs: must be >= 1, got -1", ":8: train.batch_size: must be >= 1, got 0",
        ":9: train.device: must be one of auto, cpu, cuda; got 'gpu'",
        ":11: norm.noise.sigma: must be >= 0, got -0.1",
        ":12: model.name: unknown model 'resnet' (valid: cnn9, wrn)"}) {
    EXPECT_TRUE(contains(all, needle)) << needle << "\nin:\n" << all;
  }
}

TEST_F(ExperimentTest, UnknownComponentIsOneIssueAtTheNameKey) {
  const ConfigError e = fail("norm:\n  name: cwx\n  groups: 8\n  noise: {sigma: 0.5}\n");
  ASSERT_EQ(e.issues().size(), 1u) << e.what();
  EXPECT_EQ(e.issues()[0].where, file() + ":2");
  EXPECT_EQ(e.issues()[0].path, "norm.name");
  EXPECT_EQ(e.issues()[0].message, "unknown norm scheme 'cwx' (did you mean 'cwo'?) (valid: bn, cwo)");
  // Common options are still checked.
  const ConfigError e2 = fail("norm:\n  name: cwx\n  noise: {sigma: -1}\n");
  EXPECT_EQ(e2.issues().size(), 2u) << e2.what();
}

TEST_F(ExperimentTest, OptionsOfAnotherComponentAreUnknown) {
  const ConfigError e = fail("optim:\n  name: adam\n  momentum: 0.9\n");
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].path, "optim.momentum");
  EXPECT_TRUE(contains(e.issues()[0].message, "unknown key")) << e.what();
}

TEST_F(ExperimentTest, NameOfAComponentMustBeAString) {
  const ConfigError e = fail("model:\n  name: [wrn]\n");
  ASSERT_EQ(e.issues().size(), 1u) << e.what();
  EXPECT_EQ(e.issues()[0].path, "model.name");
  EXPECT_EQ(e.issues()[0].message, "expected a string, got a list");
}

TEST_F(ExperimentTest, ErrorsInABaseFilePointIntoTheBase) {
  dir_.write("bases/common.yaml", "optim:\n  lr: 0.1\n  nesterof: true\n");
  const ConfigError e = fail("base: bases/common.yaml\n");
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].where, (dir_.path() / "bases/common.yaml").string() + ":3");
  EXPECT_TRUE(contains(e.what(), "did you mean 'nesterov'?"));
}

TEST_F(ExperimentTest, BaseInheritanceTwoLevelsAndList) {
  dir_.write("bases/root.yaml",
             "seed: 5\noptim: {lr: 0.2, momentum: 0.5, milestones: [10, 20]}\n"
             "train: {epochs: 90, batch_size: 256}\nnorm: {name: cwo, groups: 8}\n");
  dir_.write("bases/mid.yaml", "base: root.yaml\noptim:\n  momentum: 0.8\ntrain: {epochs: 30}\n");
  dir_.write("other/noise.yaml", "norm:\n  noise: {sigma: 0.5}\ntrain: {epochs: 40}\n");
  const Experiment e = load("base: [bases/mid.yaml, other/noise.yaml]\noptim: {lr: 0.05}\n");
  EXPECT_EQ(e.name, "exp");  // the name does not come from a base's file name
  EXPECT_EQ(e.seed, 5);
  const Params& optim = e.section("optim");
  EXPECT_EQ(optim.get_float("lr"), 0.05);       // own file wins
  EXPECT_EQ(optim.get_float("momentum"), 0.8);  // mid wins over root
  EXPECT_EQ(optim.get_int_list("milestones"), (std::vector<std::int64_t>{10, 20}));
  EXPECT_EQ(e.section("train").get_int("epochs"), 40);       // later base wins
  EXPECT_EQ(e.section("train").get_int("batch_size"), 256);  // sibling kept
  EXPECT_EQ(e.section("norm").get_string("name"), "cwo");
  EXPECT_EQ(e.section("norm").get_int("groups"), 8);
  EXPECT_EQ(e.section("norm").get_float("noise.sigma"), 0.5);
  EXPECT_TRUE(contains(optim.where("momentum"), "mid.yaml:3")) << optim.where("momentum");
}

TEST_F(ExperimentTest, SetOverridesFileAndBase) {
  dir_.write("base.yaml", "optim: {lr: 0.2, momentum: 0.5}\ntrain: {epochs: 3}\n");
  const Experiment e = load("base: base.yaml\noptim: {lr: 0.3}\n",
                            {"optim.lr=0.7", "optim.momentum=0.1", "train.epochs=9",
                             "optim.milestones=[5, 15, 25]", "norm.noise.sigma=2", "optim.lr=0.6"});
  const Params& optim = e.section("optim");
  EXPECT_EQ(optim.get_float("lr"), 0.6);  // later overrides win
  EXPECT_EQ(optim.where("lr"), "--set optim.lr=0.6");
  EXPECT_EQ(optim.get_float("momentum"), 0.1);
  EXPECT_EQ(optim.get_int_list("milestones"), (std::vector<std::int64_t>{5, 15, 25}));
  EXPECT_EQ(e.section("train").get_int("epochs"), 9);
  EXPECT_EQ(e.section("norm").get_float("noise.sigma"), 2.0);
}

TEST_F(ExperimentTest, SetValuesAreTypedAndNamed) {
  const ConfigError e = fail("optim: {lr: 0.1}\n", {"optim.lr=abc", "optim.lrr=1", "bogus"});
  ASSERT_EQ(e.issues().size(), 3u) << e.what();
  const std::string all = e.what();
  EXPECT_TRUE(contains(all, "--set optim.lr=abc: optim.lr: expected a float, got 'abc'")) << all;
  EXPECT_TRUE(contains(all, "--set optim.lrr=1: optim.lrr: unknown key (did you mean 'lr'?)"))
      << all;
  EXPECT_TRUE(contains(all, "--set bogus")) << all;
}

TEST_F(ExperimentTest, SeedAndNameOverrides) {
  const std::string yaml = "name: from_file\nseed: 1\n";
  EXPECT_EQ(load(yaml).seed, 1);
  EXPECT_EQ(load(yaml, {}, 42).seed, 42);
  EXPECT_EQ(load(yaml, {"seed=3"}).seed, 3);
  EXPECT_EQ(load(yaml, {"seed=3"}, 4).seed, 4);  // --seed wins over --set seed=
  EXPECT_EQ(load(yaml, {"name=other"}).name, "other");
  const ConfigError e = fail(yaml, {}, -1);
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].str(), "--seed: seed: must be >= 0, got -1");
  EXPECT_EQ(fail(yaml, {"name=a/b"}).issues().at(0).path, "name");
}

TEST_F(ExperimentTest, ResolvedHasEveryOptionNested) {
  const Experiment e = load("name: r\nseed: 2\nnorm:\n  noise:\n    sigma: 1\n");
  const nlohmann::json j = e.resolved();
  EXPECT_EQ(j.at("name"), "r");
  EXPECT_EQ(j.at("seed"), 2);
  EXPECT_EQ(j.at("optim").at("name"), "sgd");
  EXPECT_EQ(j.at("model").at("name"), "cnn9");  // default component is written out too
  EXPECT_TRUE(j.at("norm").at("noise").at("sigma").is_number_float());
  EXPECT_TRUE(j.at("train").at("epochs").is_number_integer());
  EXPECT_EQ(j.at("optim").at("milestones"), nlohmann::json::array({30, 60}));
  EXPECT_EQ(j.at("train").at("device"), "auto");
  EXPECT_EQ(j.at("output").at("root"), "results");
  const std::string dumped = j.dump();
  EXPECT_TRUE(contains(dumped, "\"sigma\":1.0")) << dumped;
  EXPECT_TRUE(contains(dumped, "\"lr\":0.1,")) << dumped;
}

TEST_F(ExperimentTest, ResolvedYamlOrderAndFloats) {
  const Experiment e = load("name: run1\nseed: 3\nnorm:\n  noise:\n    sigma: 1\n");
  const std::string y = e.resolved_yaml();
  EXPECT_EQ(y.rfind("name: run1\nseed: 3\ndata:", 0), 0u) << y;
  std::size_t last = 0;
  for (const auto& s : section_order()) {
    if (!e.sections.count(s)) continue;  // the test schema has no task section
    const std::size_t at = y.find("\n" + s + ":");
    ASSERT_NE(at, std::string::npos) << s;
    EXPECT_GT(at, last) << s;
    last = at;
  }
  EXPECT_TRUE(contains(y, "sigma: 1.0")) << y;
  EXPECT_TRUE(contains(y, "lr: 0.1\n")) << y;
  EXPECT_TRUE(contains(y, "eps: 1e-05\n")) << y;
  EXPECT_TRUE(contains(y, "milestones: [30, 60]")) << y;
}

TEST_F(ExperimentTest, ResolvedYamlLoadsBackToTheSameExperiment) {
  const Experiment a = load(
      "name: 'true'\nseed: 11\nmodel: {name: wrn, depth: 40}\n"
      "optim: {lr: 0.123456789012345678, momentum: 0.3333333333333333, nesterov: on,"
      " milestones: []}\n"
      "norm: {name: cwo, noise: {sigma: 1, schedule: cosine}}\n"
      "data: {name: cifar10, root: '/data/x: y #z'}\n"
      "output: {root: '0.5'}\ntrain: {device: cpu}\n");
  const auto again_path = dir_.write("again/config.yaml", a.resolved_yaml());
  const Experiment b = load_experiment(again_path, {}, schema_);
  EXPECT_EQ(b.name, "true");
  EXPECT_EQ(b.seed, 11);
  EXPECT_EQ(b.canonical(), a.canonical());
  EXPECT_EQ(b.hash(), a.hash());
  EXPECT_EQ(b.resolved(), a.resolved());
  EXPECT_EQ(b.section("optim").get_float("lr"), 0.123456789012345678);
  EXPECT_EQ(b.section("data").get_string("root"), "/data/x: y #z");
  EXPECT_EQ(b.section("output").get_string("root"), "0.5");
  EXPECT_EQ(b.resolved_yaml(), a.resolved_yaml());
}

TEST_F(ExperimentTest, CanonicalLeavesOutIdentityFreeParts) {
  const Experiment e = load("name: c\nseed: 9\n");
  const std::string c = e.canonical();
  EXPECT_FALSE(contains(c, "\"seed\"")) << c;
  EXPECT_FALSE(contains(c, "\"c\"")) << c;
  EXPECT_FALSE(contains(c, "output")) << c;  // only unhashed options: the section is dropped
  EXPECT_FALSE(contains(c, "device")) << c;
  EXPECT_TRUE(contains(c, "\"train\":{\"batch_size\":128,\"epochs\":10}")) << c;
  EXPECT_EQ(e.hash(), fnv1a64_hex(c));
  EXPECT_EQ(e.hash().size(), 16u);
}

TEST_F(ExperimentTest, HashIgnoresSeedNameAndUnhashedOptions) {
  const std::string base = "optim: {lr: 0.1}\n";
  const std::string h = load(base).hash();
  EXPECT_EQ(load(base, {"seed=5"}).hash(), h);
  EXPECT_EQ(load(base, {}, 6).hash(), h);
  EXPECT_EQ(load(base, {"name=renamed"}).hash(), h);
  EXPECT_EQ(load(base, {"output.root=/elsewhere"}).hash(), h);
  EXPECT_EQ(load(base, {"train.device=cuda"}).hash(), h);
  EXPECT_EQ(load(base, {"optim.lr=1e-1"}).hash(), h);              // same value, other spelling
  EXPECT_EQ(load("optim: {lr: 0.1, momentum: 0.9}\n").hash(), h);  // explicit default
  EXPECT_EQ(load(base, {"norm.noise.sigma=0"}).hash(), load(base, {"norm.noise.sigma=0.0"}).hash());
}

TEST_F(ExperimentTest, HashChangesWithEveryHashedValue) {
  const std::string base = "optim: {lr: 0.1}\n";
  const std::string h = load(base).hash();
  std::set<std::string> seen{h};
  for (const char* o : {"optim.lr=0.2", "optim.nesterov=true", "optim.milestones=[30]",
                        "optim.weight_decay=0", "train.epochs=11", "train.batch_size=64",
                        "norm.noise.sigma=0.5", "norm.noise.schedule=cosine", "model.name=wrn",
                        "data.samples=100", "schedule.name=constant", "schedule.warmup=2"}) {
    const std::string changed = load(base, {o}).hash();
    EXPECT_TRUE(seen.insert(changed).second) << o << " gave a hash seen before";
  }
}

// The selector section (task) decides which sections an experiment has.
class SelectorTest : public ExperimentTest {
 protected:
  void SetUp() override {
    SectionSchema task{"task", "task", {}, {{"classify", {}}, {"probe", {opt_int("tokens", 8, "sequence length", at_least(1))}}}, "classify"};
    schema_.sections.push_back(task);
    schema_.selector_section = "task";
    schema_.selector_uses["probe"] = {"optim", "train", "output"};
  }
};

TEST_F(SelectorTest, DefaultTaskReadsEverySectionAndKeepsTheHash) {
  const Experiment with_task = load("task: {name: classify}\noptim: {lr: 0.2}\n");
  EXPECT_TRUE(with_task.sections.count("model"));
  EXPECT_TRUE(with_task.sections.count("data"));
  // The default task is left out of the hash: configs from before tasks keep their runs.
  Schema plain = test_schema();
  const Experiment before = load_experiment(dir_.write("b.yaml", "optim: {lr: 0.2}\n"), {}, plain);
  EXPECT_EQ(with_task.hash(), before.hash());
  EXPECT_FALSE(contains(with_task.canonical(), "task")) << with_task.canonical();
}

TEST_F(SelectorTest, OtherTaskDropsUnreadSectionsAndRejectsSetOnes) {
  const Experiment e = load("task: {name: probe, tokens: 4}\noptim: {lr: 0.2}\n");
  EXPECT_FALSE(e.sections.count("model"));
  EXPECT_FALSE(e.sections.count("data"));
  EXPECT_EQ(e.section("task").get_int("tokens"), 4);
  EXPECT_TRUE(contains(e.canonical(), "probe")) << e.canonical();
  EXPECT_FALSE(contains(e.resolved_yaml(), "\nmodel:")) << e.resolved_yaml();

  const ConfigError err = fail("task: {name: probe}\nmodel: {width: 8}\n");
  ASSERT_EQ(err.issues().size(), 1u) << err.what();
  EXPECT_EQ(err.issues()[0].where, file() + ":2");
  EXPECT_TRUE(contains(err.issues()[0].message, "task 'probe' does not read section 'model'"))
      << err.what();
  // So does a --set into a section the task does not read.
  EXPECT_TRUE(contains(fail("task: {name: probe}\n", {"data.name=x"}).what(), "'data'"));
}

// Options added after results exist are hashed only when they differ from their default.
TEST_F(ExperimentTest, OptionsHashedUnlessDefaultKeepOldHashes) {
  const std::string before = load("optim: {lr: 0.2}\n").hash();
  schema_.sections.back().common.push_back(
      hashed_unless_default(opt_int("cutout", 0, "new option", at_least(0))));
  const std::string section = schema_.sections.back().section;
  EXPECT_EQ(load("optim: {lr: 0.2}\n").hash(), before);
  EXPECT_EQ(load("optim: {lr: 0.2}\n" + section + ": {cutout: 0}\n").hash(), before);
  const Experiment set = load("optim: {lr: 0.2}\n" + section + ": {cutout: 16}\n");
  EXPECT_NE(set.hash(), before);
  EXPECT_TRUE(contains(set.canonical(), "cutout")) << set.canonical();
}
