#include <gtest/gtest.h>

#include <chrono>

#include "config/node.h"
#include "core/error.h"
#include "test_support.h"

using namespace normexp;
using namespace normexp::config;
using normexp::testing::TempDir;

namespace {

// Runs `f`, which must throw a ConfigError, and returns it.
template <typename F>
ConfigError config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return ConfigError({});
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST(Node, ParseKeepsTextLinesAndOrder) {
  const Node n =
      parse_yaml("b: 5.0e-3\na:\n  x: [1, 2]\n  y: 'quoted'\nempty:\nblank: ''\n", "cfg.yaml");
  ASSERT_TRUE(n.is_map());
  ASSERT_EQ(n.map.size(), 4u);
  EXPECT_EQ(n.map[0].first, "b");
  EXPECT_EQ(n.map[1].first, "a");
  const Node* b = n.find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->kind, Node::Kind::Scalar);
  EXPECT_EQ(b->scalar, "5.0e-3");
  EXPECT_EQ(b->where(), "cfg.yaml:1");
  const Node* a = n.find("a");
  EXPECT_EQ(a->where(), "cfg.yaml:2");  // a block map is located at its key
  const Node* x = a->find("x");
  ASSERT_EQ(x->kind, Node::Kind::Seq);
  ASSERT_EQ(x->seq.size(), 2u);
  EXPECT_EQ(x->seq[1].scalar, "2");
  EXPECT_EQ(x->seq[1].where(), "cfg.yaml:3");
  EXPECT_EQ(a->find("y")->scalar, "quoted");
  EXPECT_EQ(a->find("y")->line, 4);
  EXPECT_TRUE(n.find("empty")->is_null());
  EXPECT_EQ(n.find("empty")->where(), "cfg.yaml:5");
  EXPECT_EQ(n.find("blank")->kind, Node::Kind::Scalar);  // '' is a string, not null
  EXPECT_EQ(n.find("missing"), nullptr);
}

TEST(Node, SyntaxErrorHasFileAndLine) {
  const ConfigError e = config_error([] { parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "bad.yaml"); });
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_TRUE(contains(e.issues()[0].where, "bad.yaml:")) << e.what();
  EXPECT_NE(e.issues()[0].where, "bad.yaml:0");
  EXPECT_TRUE(contains(e.what(), "invalid YAML")) << e.what();
}

TEST(Node, ADuplicateKeyIsNamedByItsPath) {
  const ConfigError e = config_error([] { parse_yaml("optim:\n  lr: 1\n  lr: 2\n", "d.yaml"); });
  EXPECT_EQ(e.issues().at(0).where, "d.yaml:3");
  EXPECT_EQ(e.issues().at(0).path, "optim.lr");
}

TEST(Node, DuplicateKeyIsAnError) {
  const ConfigError e = config_error([] { parse_yaml("lr: 1\nmomentum: 0\nlr: 2\n", "d.yaml"); });
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].where, "d.yaml:3");
  EXPECT_EQ(e.issues()[0].path, "lr");
}

TEST(Node, DescribeAndWhere) {
  const Node n = parse_yaml("s: abc\nl: [1]\nm: {a: 1}\nz:\n", "f.yaml");
  EXPECT_EQ(n.find("s")->describe(), "abc");
  EXPECT_EQ(n.find("l")->describe(), "a list");
  EXPECT_EQ(n.find("m")->describe(), "a mapping");
  EXPECT_EQ(n.find("z")->describe(), "null");
  Node plain;
  plain.file = "--seed";
  EXPECT_EQ(plain.where(), "--seed");
}

TEST(Node, GetOrAddAndErase) {
  Node n;
  n.file = "x";
  Node& child = n.get_or_add("a");
  EXPECT_TRUE(n.is_map());
  EXPECT_TRUE(child.is_null());
  child.kind = Node::Kind::Scalar;
  child.scalar = "1";
  EXPECT_EQ(&n.get_or_add("a"), n.find("a"));  // existing key: no second entry
  EXPECT_EQ(n.map.size(), 1u);
  EXPECT_TRUE(n.erase("a"));
  EXPECT_FALSE(n.erase("a"));
  EXPECT_TRUE(n.map.empty());
  Node scalar = parse_yaml("3", "s");
  EXPECT_THROW(scalar.get_or_add("a"), std::logic_error);
}

TEST(Node, DeepMergeKeepsSiblingsAndReplacesLeavesAndLists) {
  Node dst = parse_yaml(
      "optim: {lr: 0.1, momentum: 0.9, milestones: [30, 60]}\ntrain: {epochs: 5}\n", "base.yaml");
  const Node src = parse_yaml("optim: {lr: 0.2, milestones: [10]}\nextra: 1\n", "child.yaml");
  deep_merge(dst, src);
  const Node* optim = dst.find("optim");
  EXPECT_EQ(optim->find("lr")->scalar, "0.2");
  EXPECT_EQ(optim->find("lr")->file, "child.yaml");
  ASSERT_NE(optim->find("momentum"), nullptr) << "a sibling key of the base lost in the merge";
  EXPECT_EQ(optim->find("momentum")->scalar, "0.9");
  EXPECT_EQ(optim->find("momentum")->file, "base.yaml");
  ASSERT_EQ(optim->find("milestones")->seq.size(), 1u);
  EXPECT_EQ(dst.find("train")->find("epochs")->scalar, "5");
  EXPECT_EQ(dst.find("extra")->scalar, "1");
  EXPECT_EQ(dst.map.back().first, "extra");  // new keys are appended
}

TEST(Node, OverrideCreatesPathsAndRecordsSource) {
  Node root = parse_yaml("optim: {lr: 0.1}\n", "a.yaml");
  apply_override(root, "optim.lr=0.3");
  apply_override(root, "norm.noise.sigma=1");
  apply_override(root, "optim.milestones=[30, 60]");
  apply_override(root, "name=");
  const Node* lr = root.find("optim")->find("lr");
  EXPECT_EQ(lr->scalar, "0.3");
  EXPECT_EQ(lr->file, "--set optim.lr=0.3");
  EXPECT_EQ(lr->line, 0);
  EXPECT_EQ(lr->where(), "--set optim.lr=0.3");
  const Node* sigma = root.find("norm")->find("noise")->find("sigma");
  ASSERT_NE(sigma, nullptr);
  EXPECT_EQ(sigma->scalar, "1");
  const Node* ms = root.find("optim")->find("milestones");
  ASSERT_EQ(ms->kind, Node::Kind::Seq);
  ASSERT_EQ(ms->seq.size(), 2u);
  EXPECT_EQ(ms->seq[1].scalar, "60");
  EXPECT_EQ(ms->seq[1].where(), "--set optim.milestones=[30, 60]");
  EXPECT_TRUE(root.find("name")->is_null());
}

TEST(Node, OverrideValueMayContainEquals) {
  Node root;
  apply_override(root, "output.root=/tmp/a=b");
  EXPECT_EQ(root.find("output")->find("root")->scalar, "/tmp/a=b");
}

TEST(Node, OverrideThroughAScalarReplacesIt) {
  Node root = parse_yaml("optim: {lr: 0.1}\n", "a.yaml");
  apply_override(root, "optim.lr.x=1");
  const Node* lr = root.find("optim")->find("lr");
  ASSERT_TRUE(lr->is_map());
  EXPECT_EQ(lr->find("x")->scalar, "1");
}

TEST(Node, TildeOverrideRemovesAKey) {
  Node root = parse_yaml("norm: {name: cwo, c: 2.0, noise: {sigma: 1.0}}\n", "a.yaml");
  apply_override(root, "~norm.noise.sigma");
  apply_override(root, "~norm.c");
  EXPECT_EQ(root.find("norm")->find("c"), nullptr);
  EXPECT_EQ(root.find("norm")->find("noise")->find("sigma"), nullptr);
  EXPECT_NE(root.find("norm")->find("name"), nullptr);
  ConfigError e = config_error([&] { apply_override(root, "~norm.c"); });
  EXPECT_EQ(e.issues().at(0).where, "--set ~norm.c");
  EXPECT_EQ(e.issues().at(0).path, "norm.c");
  e = config_error([&] { apply_override(root, "~model.width"); });
  EXPECT_EQ(e.issues().at(0).path, "model.width");
}

TEST(Node, BadOverrides) {
  Node root;
  ConfigError e = config_error([&] { apply_override(root, "optim.lr"); });
  EXPECT_EQ(e.issues().at(0).where, "--set optim.lr");
  e = config_error([&] { apply_override(root, "=3"); });
  EXPECT_EQ(e.issues().at(0).where, "--set =3");
  e = config_error([&] { apply_override(root, "a..b=3"); });
  EXPECT_EQ(e.issues().at(0).where, "--set a..b=3");
  e = config_error([&] { apply_override(root, "a=[1, 2"); });
  EXPECT_EQ(e.issues().at(0).where, "--set a=[1, 2");
  EXPECT_EQ(e.issues().at(0).path, "a");
  EXPECT_EQ(root.find("a"), nullptr);  // failed overrides change nothing
}

TEST(LoadConfig, BaseChainWithRelativePathsAndDeepMerge) {
  TempDir dir;
  dir.write("configs/common/root.yaml",
            "seed: 1\noptim: {lr: 0.1, momentum: 0.9}\ntrain: {epochs: 100, batch_size: 64}\n");
  dir.write("configs/common/mid.yaml",
            "base: root.yaml\noptim:\n  lr: 0.05\ntrain: {epochs: 50}\n");
  const auto top =
      dir.write("configs/exp/top.yaml", "base: ../common/mid.yaml\ntrain:\n  epochs: 7\n");
  const Node n = load_config_file(top);
  EXPECT_EQ(n.find("base"), nullptr);
  EXPECT_EQ(n.find("seed")->scalar, "1");
  EXPECT_EQ(n.find("optim")->find("lr")->scalar, "0.05");
  EXPECT_EQ(n.find("optim")->find("momentum")->scalar, "0.9");
  EXPECT_EQ(n.find("train")->find("epochs")->scalar, "7");
  EXPECT_EQ(n.find("train")->find("batch_size")->scalar, "64");
  // Values remember the file they came from, so later errors point into the base.
  EXPECT_TRUE(contains(n.find("optim")->find("momentum")->where(), "root.yaml:2"))
      << n.find("optim")->find("momentum")->where();
  EXPECT_TRUE(contains(n.find("train")->find("epochs")->where(), "top.yaml:3"));
}

TEST(LoadConfig, ListOfBasesLaterWins) {
  TempDir dir;
  dir.write("a.yaml", "optim: {lr: 0.1, momentum: 0.5}\nseed: 1\n");
  dir.write("sub/b.yaml", "optim: {lr: 0.2}\n");
  const auto top = dir.write("top.yaml", "base: [a.yaml, sub/b.yaml]\nseed: 3\n");
  const Node n = load_config_file(top);
  EXPECT_EQ(n.find("optim")->find("lr")->scalar, "0.2");
  EXPECT_EQ(n.find("optim")->find("momentum")->scalar, "0.5");
  EXPECT_EQ(n.find("seed")->scalar, "3");
}

TEST(LoadConfig, DiamondIsNotACycle) {
  TempDir dir;
  dir.write("d.yaml", "seed: 4\n");
  dir.write("b.yaml", "base: d.yaml\n");
  dir.write("c.yaml", "base: d.yaml\n");
  const auto a = dir.write("a.yaml", "base: [b.yaml, c.yaml]\n");
  EXPECT_EQ(load_config_file(a).find("seed")->scalar, "4");
}

TEST(LoadConfig, MissingFiles) {
  TempDir dir;
  const auto missing = dir.path() / "nope.yaml";
  ConfigError e = config_error([&] { load_config_file(missing); });
  EXPECT_EQ(e.issues().at(0).where, missing.string());
  EXPECT_TRUE(contains(e.what(), "cannot read config file")) << e.what();

  const auto top = dir.write("top.yaml", "seed: 1\nbase: gone.yaml\n");
  e = config_error([&] { load_config_file(top); });
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].where, top.string() + ":2");  // the base: line that named it
  EXPECT_TRUE(contains(e.what(), "cannot read config file")) << e.what();
  EXPECT_TRUE(contains(e.what(), (dir.path() / "gone.yaml").string())) << e.what();
}

TEST(LoadConfig, BaseCycleListsTheChain) {
  TempDir dir;
  const auto a = dir.write("a.yaml", "base: b.yaml\n");
  dir.write("b.yaml", "seed: 1\nbase: a.yaml\n");
  const ConfigError e = config_error([&] { load_config_file(a); });
  ASSERT_EQ(e.issues().size(), 1u);
  const std::string msg = e.what();
  EXPECT_TRUE(contains(msg, "cycle")) << msg;
  EXPECT_TRUE(contains(msg, "a.yaml -> ")) << msg;
  EXPECT_TRUE(contains(msg, "b.yaml -> ")) << msg;
  EXPECT_TRUE(contains(e.issues()[0].where, "b.yaml:2")) << e.issues()[0].where;

  const auto self = dir.write("self.yaml", "base: ./self.yaml\n");
  EXPECT_TRUE(contains(config_error([&] { load_config_file(self); }).what(), "cycle"));
}

TEST(LoadConfig, SyntaxErrorInBaseNamesTheBaseFile) {
  TempDir dir;
  const auto bad = dir.write("bad.yaml", "optim:\n  lr: [0.1\n");
  const auto top = dir.write("top.yaml", "base: bad.yaml\n");
  const ConfigError e = config_error([&] { load_config_file(top); });
  EXPECT_TRUE(contains(e.issues().at(0).where, bad.string() + ":")) << e.what();
}

TEST(LoadConfig, TopLevelMustBeAMapping) {
  TempDir dir;
  const auto list = dir.write("list.yaml", "- a\n- b\n");
  EXPECT_TRUE(contains(config_error([&] { load_config_file(list); }).what(), "mapping"));
  const auto bad_base = dir.write("badbase.yaml", "base: {a: 1}\n");
  EXPECT_TRUE(contains(config_error([&] { load_config_file(bad_base); }).what(), "base"));
}

// An empty or comment-only config used to start the all-defaults experiment (200 epochs of a
// 1.9 M-parameter CNN); it is refused, while an empty base adds nothing and is fine.
TEST(LoadConfig, AnEmptyConfigIsAnErrorButAnEmptyBaseIsNot) {
  TempDir dir;
  for (const char* text : {"", "# only a comment\n\n", "---\n"}) {
    const auto empty = dir.write("empty.yaml", text);
    const ConfigError e = config_error([&] { load_config_file(empty); });
    EXPECT_EQ(e.issues().at(0).where, empty.string());
    EXPECT_TRUE(contains(e.what(), "empty")) << e.what();
  }
  dir.write("nothing.yaml", "# nothing\n");
  const Node n = load_config_file(dir.write("top.yaml", "base: nothing.yaml\nseed: 1\n"));
  ASSERT_TRUE(n.is_map());
  EXPECT_EQ(n.find("seed")->scalar, "1");
}

// "Billion laughs": nine levels of nine aliases would copy 9^9 nodes. The loader stops at its
// node budget, quickly and with a config error naming the file.
TEST(Node, AnAliasBombIsRefusedWithoutExpandingIt) {
  std::string text = "l0: &l0 [x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level <= 9; ++level) {
    text += "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int k = 0; k < 9; ++k) text += (k ? ", *l" : "*l") + std::to_string(level - 1);
    text += "]\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ConfigError e = config_error([&] { parse_yaml(text, "bomb.yaml"); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  EXPECT_EQ(e.issues().at(0).where, "bomb.yaml");
  EXPECT_TRUE(contains(e.what(), "aliases")) << e.what();
  // Aliases as such are fine: a few reuses of an anchor load as copies.
  const Node ok = parse_yaml("a: &a {lr: 1}\nb: *a\n", "ok.yaml");
  EXPECT_EQ(ok.find("b")->find("lr")->scalar, "1");
}

// Every string is checked as UTF-8 where it is read, with its file:line and key, instead of
// failing later in the JSON writer after the run directory exists.
TEST(Node, InvalidUtf8IsRefusedAtItsLine) {
  const ConfigError value = config_error([] { parse_yaml("seed: 1\nname: caf\xe9\n", "u.yaml"); });
  EXPECT_EQ(value.issues().at(0).where, "u.yaml:2");
  EXPECT_EQ(value.issues().at(0).path, "name");
  EXPECT_TRUE(contains(value.what(), "UTF-8")) << value.what();
  const ConfigError key = config_error([] { parse_yaml("optim:\n  l\xffr: 1\n", "k.yaml"); });
  EXPECT_EQ(key.issues().at(0).where, "k.yaml:2");
  EXPECT_TRUE(contains(key.what(), "key is not valid UTF-8")) << key.what();
  EXPECT_NO_THROW(parse_yaml("name: café σ 漢字 🙂\n", "ok.yaml"));
}

// 10,000 levels used to give "invalid YAML: bad file" (yaml-cpp's depth guard), 300 levels an
// error whose key path was 300 "[0]"s long.
TEST(Node, DeepNestingSaysSoBriefly) {
  for (int depth : {300, 10000}) {
    SCOPED_TRACE(depth);
    const std::string text = "a: " + std::string(depth, '[') + std::string(depth, ']') + "\n";
    const ConfigError e = config_error([&] { parse_yaml(text, "deep.yaml"); });
    EXPECT_TRUE(contains(e.what(), "levels deep")) << e.what();
    EXPECT_FALSE(contains(e.what(), "bad file")) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 200u) << e.what();
  }
}

TEST(Node, ATabInTheIndentationIsNamed) {
  const ConfigError e = config_error([] { parse_yaml("optim:\n\tlr: 0.1\n", "t.yaml"); });
  EXPECT_TRUE(contains(e.what(), "tab")) << e.what();
}
