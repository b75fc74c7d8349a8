#include <gtest/gtest.h>

#include <algorithm>

#include "config/schema.h"
#include "core/error.h"

using namespace normexp;
using namespace normexp::config;

namespace {

const std::vector<OptionSpec>& specs() {
  static const std::vector<OptionSpec> k{
      opt_float("lr", 0.1, "initial learning rate", greater_than(0)),
      opt_float("momentum", 0.9, "momentum", between(0, 1, false, true)),
      opt_bool("nesterov", false, "Nesterov momentum"),
      opt_int("epochs", 10, "epochs", at_least(1)),
      opt_int_list("milestones", {30, 60}, "epochs where lr drops", at_least(0)),
      opt_float_list("betas", {0.9, 0.999}, "betas", between(0, 1)),
      opt_float("noise.sigma", 0.0, "noise std", at_least(0)),
      opt_string("noise.schedule", "constant", "noise schedule",
                 {"cosine", "multistep", "constant"}),
      unhashed(opt_string("device", "auto", "where to train", {"auto", "cpu", "cuda"})),
      opt_string("tag", "", "free text"),
  };
  return k;
}

struct Parsed {
  Params params;
  std::vector<ConfigIssue> issues;
};

Parsed parse(const std::string& yaml) {
  Parsed out;
  const Node n = parse_yaml(yaml, "s.yaml");
  out.params = parse_section(&n, "optim", specs(), out.issues);
  return out;
}

// The single issue produced by `yaml`; fails the test when there is not exactly one.
ConfigIssue only_issue(const std::string& yaml) {
  Parsed p = parse(yaml);
  EXPECT_EQ(p.issues.size(), 1u) << yaml;
  return p.issues.empty() ? ConfigIssue{} : p.issues[0];
}

}  // namespace

TEST(Range, ContainsAndDescribe) {
  EXPECT_TRUE(greater_than(0).contains(1e-9));
  EXPECT_FALSE(greater_than(0).contains(0));
  EXPECT_TRUE(at_least(1).contains(1));
  EXPECT_FALSE(at_least(1).contains(0.999));
  const Range unit = between(0, 1, false, true);
  EXPECT_TRUE(unit.contains(0));
  EXPECT_FALSE(unit.contains(1));
  EXPECT_TRUE(between(0, 1).contains(1));
  EXPECT_TRUE(Range{}.contains(-1e300));
  EXPECT_EQ(greater_than(0).describe(), "> 0");
  EXPECT_EQ(at_least(1).describe(), ">= 1");
  EXPECT_EQ(unit.describe(), "in [0, 1)");
  EXPECT_EQ(between(0.5, 2, true, false).describe(), "in (0.5, 2]");
  EXPECT_EQ(Range{}.describe(), "");
}

TEST(ParseScalar, Ints) {
  EXPECT_EQ(std::get<std::int64_t>(*parse_scalar("3", ValueType::Int)), 3);
  EXPECT_EQ(std::get<std::int64_t>(*parse_scalar("-2", ValueType::Int)), -2);
  EXPECT_EQ(std::get<std::int64_t>(*parse_scalar("+7", ValueType::Int)), 7);
  for (const char* bad : {"3.5", "1e3", "0x10", "", "abc", "3 ", "99999999999999999999"}) {
    EXPECT_FALSE(parse_scalar(bad, ValueType::Int)) << bad;
  }
}

TEST(ParseScalar, Floats) {
  EXPECT_DOUBLE_EQ(std::get<double>(*parse_scalar("1e-3", ValueType::Float)), 1e-3);
  EXPECT_DOUBLE_EQ(std::get<double>(*parse_scalar("5.0e-3", ValueType::Float)), 5e-3);
  EXPECT_DOUBLE_EQ(std::get<double>(*parse_scalar(".5", ValueType::Float)), 0.5);
  EXPECT_DOUBLE_EQ(std::get<double>(*parse_scalar("3", ValueType::Float)), 3.0);
  EXPECT_DOUBLE_EQ(std::get<double>(*parse_scalar("-0.25", ValueType::Float)), -0.25);
  EXPECT_EQ(std::get<double>(*parse_scalar("0.1", ValueType::Float)), 0.1);
  for (const char* bad : {"nan", "inf", "-inf", ".inf", "1e999", "abc", "", "0.1.2", "1,5"}) {
    EXPECT_FALSE(parse_scalar(bad, ValueType::Float)) << bad;
  }
}

TEST(ParseScalar, Bools) {
  for (const char* yes : {"true", "True", "TRUE", "yes", "on", "Y"}) {
    EXPECT_TRUE(std::get<bool>(*parse_scalar(yes, ValueType::Bool))) << yes;
  }
  for (const char* no : {"false", "False", "no", "off", "OFF", "n"}) {
    EXPECT_FALSE(std::get<bool>(*parse_scalar(no, ValueType::Bool))) << no;
  }
  for (const char* bad : {"1", "0", "tRUE", "yess", ""}) {
    EXPECT_FALSE(parse_scalar(bad, ValueType::Bool)) << bad;
  }
}

TEST(FormatValue, FloatsAlwaysLookLikeFloats) {
  EXPECT_EQ(format_value(Value(0.1)), "0.1");
  EXPECT_EQ(format_value(Value(1.0)), "1.0");
  EXPECT_EQ(format_value(Value(-3.0)), "-3.0");
  EXPECT_EQ(format_value(Value(1e-5)), "1e-05");
  EXPECT_EQ(format_value(Value(1e20)), "1e+20");
  EXPECT_EQ(format_value(Value(std::int64_t{3})), "3");
  EXPECT_EQ(format_value(Value(true)), "true");
  EXPECT_EQ(format_value(Value(std::string("cosine"))), "cosine");
  EXPECT_EQ(format_value(Value(std::vector<std::int64_t>{30, 60})), "[30, 60]");
  EXPECT_EQ(format_value(Value(std::vector<double>{0.9, 1.0})), "[0.9, 1.0]");
  EXPECT_EQ(format_value(Value(std::vector<double>{})), "[]");
  // Shortest text, yet exact.
  const double third = 1.0 / 3.0;
  EXPECT_EQ(std::get<double>(*parse_scalar(format_value(Value(third)), ValueType::Float)), third);
}

TEST(TypeName, Names) {
  EXPECT_EQ(type_name(ValueType::Int), "an integer");
  EXPECT_EQ(type_name(ValueType::Float), "a float");
  EXPECT_EQ(type_name(ValueType::IntList), "a list of integers");
}

TEST(ParseSection, DefaultsWhenAbsent) {
  std::vector<ConfigIssue> issues;
  const Params p = parse_section(nullptr, "optim", specs(), issues);
  EXPECT_TRUE(issues.empty());
  EXPECT_EQ(p.section(), "optim");
  EXPECT_EQ(p.get_float("lr"), 0.1);
  EXPECT_EQ(p.get_int_list("milestones"), (std::vector<std::int64_t>{30, 60}));
  EXPECT_EQ(p.get_string("noise.schedule"), "constant");
  EXPECT_TRUE(p.is_default("lr"));
  EXPECT_EQ(p.where("lr"), "default");
  EXPECT_FALSE(p.hashed("device"));
  EXPECT_TRUE(p.hashed("lr"));
}

TEST(ParseSection, TypesValuesAndRemembersWhere) {
  const Parsed p = parse(
      "lr: 5.0e-3\nmomentum: 0\nnesterov: yes\nepochs: 3\nmilestones: [1, 2, 3]\n"
      "betas: [0.5, 1]\nnoise:\n  sigma: 1\n  schedule: cosine\ndevice: cpu\ntag: hello world\n");
  ASSERT_TRUE(p.issues.empty()) << p.issues[0].str();
  const Params& q = p.params;
  EXPECT_EQ(q.get_float("lr"), 5e-3);
  EXPECT_EQ(q.get_float("momentum"), 0.0);
  EXPECT_TRUE(q.get_bool("nesterov"));
  EXPECT_EQ(q.get_int("epochs"), 3);
  EXPECT_EQ(q.get_int_list("milestones"), (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(q.get_float_list("betas"), (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(q.get_float("noise.sigma"), 1.0);
  EXPECT_TRUE(std::holds_alternative<double>(q.get("noise.sigma")));
  EXPECT_EQ(q.get_string("noise.schedule"), "cosine");
  EXPECT_EQ(q.get_string("tag"), "hello world");
  EXPECT_EQ(q.where("lr"), "s.yaml:1");
  EXPECT_EQ(q.where("noise.sigma"), "s.yaml:8");
  EXPECT_FALSE(q.is_default("lr"));
}

TEST(ParseSection, UnknownKeyHasPathLineAndSuggestion) {
  const ConfigIssue i = only_issue("lr: 0.1\nlrr: 0.2\n");
  EXPECT_EQ(i.where, "s.yaml:2");
  EXPECT_EQ(i.path, "optim.lrr");
  EXPECT_NE(i.message.find("did you mean 'lr'?"), std::string::npos) << i.message;
  EXPECT_EQ(i.str(), "s.yaml:2: optim.lrr: unknown key (did you mean 'lr'?)");
}

TEST(ParseSection, UnknownKeyWithoutCloseMatchListsValidKeys) {
  const ConfigIssue i = only_issue("warmup_epochs: 3\n");
  EXPECT_EQ(i.path, "optim.warmup_epochs");
  EXPECT_EQ(i.message.find("did you mean"), std::string::npos);
  EXPECT_NE(i.message.find("valid: lr, momentum"), std::string::npos) << i.message;
}

TEST(ParseSection, NestedKeys) {
  ConfigIssue i = only_issue("noise:\n  sigmaa: 1\n");
  EXPECT_EQ(i.path, "optim.noise.sigmaa");
  EXPECT_EQ(i.where, "s.yaml:2");
  EXPECT_NE(i.message.find("did you mean 'sigma'?"), std::string::npos) << i.message;

  i = only_issue("noise: 3\n");
  EXPECT_EQ(i.path, "optim.noise");
  EXPECT_EQ(i.message, "expected a mapping, got '3'");

  i = only_issue("lr:\n  sigma: 1\n");
  EXPECT_EQ(i.path, "optim.lr");
  EXPECT_EQ(i.message, "expected a float, got a mapping");
}

TEST(ParseSection, WrongTypes) {
  EXPECT_EQ(only_issue("lr: abc\n").str(), "s.yaml:1: optim.lr: expected a float, got 'abc'");
  EXPECT_EQ(only_issue("epochs: 3.5\n").message, "expected an integer, got '3.5'");
  EXPECT_EQ(only_issue("epochs: 1e3\n").message, "expected an integer, got '1e3'");
  EXPECT_EQ(only_issue("nesterov: 1\n").message, "expected a boolean, got '1'");
  EXPECT_EQ(only_issue("lr: nan\n").message, "expected a float, got 'nan'");
  EXPECT_EQ(only_issue("lr:\n").message, "expected a float, got null");
  EXPECT_EQ(only_issue("lr: [1]\n").message, "expected a float, got a list");
  EXPECT_EQ(only_issue("tag: [1]\n").message, "expected a string, got a list");
  EXPECT_EQ(only_issue("milestones: 30\n").message, "expected a list of integers, got '30'");
}

TEST(ParseSection, ListElementsAreCheckedOneByOne) {
  const Parsed p = parse("milestones:\n  - 10\n  - x\n  - -5\nbetas: [0.5, 1.5]\n");
  ASSERT_EQ(p.issues.size(), 3u);
  EXPECT_EQ(p.issues[0].path, "optim.milestones[1]");
  EXPECT_EQ(p.issues[0].where, "s.yaml:3");
  EXPECT_EQ(p.issues[0].message, "expected an integer, got 'x'");
  EXPECT_EQ(p.issues[1].path, "optim.milestones[2]");
  EXPECT_EQ(p.issues[1].message, "must be >= 0, got -5");
  EXPECT_EQ(p.issues[2].path, "optim.betas[1]");
  EXPECT_EQ(p.issues[2].message, "must be in [0, 1], got 1.5");
  // A bad list leaves the default in place rather than a partial list.
  EXPECT_EQ(p.params.get_int_list("milestones"), (std::vector<std::int64_t>{30, 60}));
}

TEST(ParseSection, RangesAndChoices) {
  EXPECT_EQ(only_issue("lr: 0\n").message, "must be > 0, got 0");
  EXPECT_EQ(only_issue("epochs: -1\n").message, "must be >= 1, got -1");
  EXPECT_EQ(only_issue("momentum: 1.0\n").message, "must be in [0, 1), got 1.0");
  EXPECT_EQ(only_issue("noise: {sigma: -0.1}\n").message, "must be >= 0, got -0.1");
  const ConfigIssue i = only_issue("noise: {schedule: cosin}\n");
  EXPECT_EQ(i.path, "optim.noise.schedule");
  EXPECT_EQ(i.message.rfind("must be one of cosine, multistep, constant; got 'cosin'", 0), 0u)
      << i.message;
}

TEST(ParseSection, CollectsEveryIssue) {
  const Parsed p = parse("lrr: 1\nlr: -1\nepochs: x\nnoise: {sigma: -1, foo: 2}\ndevice: gpu\n");
  ASSERT_EQ(p.issues.size(), 6u);
  std::vector<std::string> paths;
  for (const auto& i : p.issues) paths.push_back(i.path);
  EXPECT_EQ(paths,
            (std::vector<std::string>{"optim.lrr", "optim.lr", "optim.epochs", "optim.noise.sigma",
                                      "optim.noise.foo", "optim.device"}));
}

TEST(ParseSection, SectionThatIsNotAMapping) {
  std::vector<ConfigIssue> issues;
  const Node n = parse_yaml("optim: 3\n", "s.yaml");
  parse_section(n.find("optim"), "optim", specs(), issues);
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].str(), "s.yaml:1: optim: expected a mapping, got '3'");
}

TEST(Params, GettersCheckTypesAndKeys) {
  Params p("optim");
  p.set("lr", 0.1, "a.yaml:3");
  p.set("device", std::string("cpu"), "--set train.device=cpu", false);
  EXPECT_EQ(p.get_float("lr"), 0.1);
  EXPECT_THROW(p.get_int("lr"), std::logic_error);
  EXPECT_THROW(p.get_float("missing"), std::logic_error);
  EXPECT_TRUE(p.has("lr"));
  EXPECT_FALSE(p.has("missing"));
  EXPECT_FALSE(p.hashed("device"));
  EXPECT_EQ(p.where("device"), "--set train.device=cpu");
  const ConfigError e = p.error("lr", "too big for this model");
  ASSERT_EQ(e.issues().size(), 1u);
  EXPECT_EQ(e.issues()[0].str(), "a.yaml:3: optim.lr: too big for this model");
}

TEST(Suggest, DidYouMean) {
  EXPECT_EQ(did_you_mean("lrr", {"lr", "momentum"}), " (did you mean 'lr'?)");
  EXPECT_EQ(did_you_mean("momentun", {"lr", "momentum"}), " (did you mean 'momentum'?)");
  EXPECT_EQ(did_you_mean("mometnum", {"lr", "momentum"}), " (did you mean 'momentum'?)");
  EXPECT_EQ(did_you_mean("bs", {"lr"}), "");  // two edits make any short name any other
  EXPECT_EQ(did_you_mean("warmup", {"lr", "momentum"}), "");
  // Case alone: YAML keys are case-sensitive, so "LR" is unknown, but it is plainly "lr".
  EXPECT_EQ(did_you_mean("LR", {"lr", "momentum"}), " (did you mean 'lr'?)");
  EXPECT_EQ(did_you_mean("Momentum", {"lr", "momentum"}), " (did you mean 'momentum'?)");
}

// The names timm, Hydra and Lightning users reach for first extend normexp's section names;
// four or more edits away, they got no suggestion before.
TEST(Suggest, ANameThatExtendsOrShortensExactlyOneCandidate) {
  const std::vector<std::string> top{"name",  "seed",  "task",     "data",  "model",
                                     "norm",  "optim", "schedule", "train", "output"};
  EXPECT_EQ(did_you_mean("optimizer", top), " (did you mean 'optim'?)");
  EXPECT_EQ(did_you_mean("dataset", top), " (did you mean 'data'?)");
  EXPECT_EQ(did_you_mean("trainer", top), " (did you mean 'train'?)");
  EXPECT_EQ(did_you_mean("training", top), " (did you mean 'train'?)");
  EXPECT_EQ(did_you_mean("normalization", top), " (did you mean 'norm'?)");
  EXPECT_EQ(did_you_mean("output_dir", top), " (did you mean 'output'?)");
  EXPECT_EQ(did_you_mean("lr_scheduler", top), "");  // extends nothing, far from "schedule"
  // Shortening works too, and a typo's closer match wins over an extension.
  EXPECT_EQ(did_you_mean("warm", {"lr", "warmup_epochs"}), " (did you mean 'warmup_epochs'?)");
  EXPECT_EQ(did_you_mean("datas", {"data", "dataset"}), " (did you mean 'data'?)");
  // Ambiguous: "resnet" is two edits from resnet18 and resnet50 alike and starts both, and
  // "cwx" one from cwo and cwt; three letters are too few to extend anything.
  EXPECT_EQ(did_you_mean("resnet", {"cnn9", "resnet18", "resnet50", "wrn"}), "");
  EXPECT_EQ(did_you_mean("resnet", {"cnn9", "resnet18", "wrn"}), " (did you mean 'resnet18'?)");
  EXPECT_EQ(did_you_mean("cwx", {"cwo", "cwt"}), "");
  EXPECT_EQ(did_you_mean("cwxx", {"cwo", "cwxy", "cwzz"}), " (did you mean 'cwxy'?)");
  EXPECT_EQ(did_you_mean("dataset", {"data", "dataset_root"}), "");  // shortens one, extends one
  EXPECT_EQ(did_you_mean("opt", {"optim", "output"}), "");
  EXPECT_EQ(did_you_mean("lr", {"lr", "momentum"}), "");  // a known name needs no hint
}

TEST(DescribeOptions, OneAlignedLinePerOption) {
  const std::string text = describe_options(specs(), "  ");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), static_cast<long>(specs().size()));
  EXPECT_NE(text.find("  lr: float = 0.1"), std::string::npos) << text;
  EXPECT_NE(text.find("(> 0)"), std::string::npos);
  EXPECT_NE(text.find("initial learning rate"), std::string::npos);
  EXPECT_NE(text.find("noise.schedule: string = constant"), std::string::npos);
  EXPECT_NE(text.find("(one of: cosine|multistep|constant)"), std::string::npos);
  EXPECT_NE(text.find("milestones: int list = [30, 60]"), std::string::npos);
  EXPECT_NE(text.find("tag: string = \"\""), std::string::npos);
  // The constraint column starts at the same offset on every line that has one.
  std::vector<std::size_t> columns;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    if (const std::size_t paren = line.find("  ("); paren != std::string::npos) {
      columns.push_back(line.find_first_not_of(' ', paren));
    }
    start = end + 1;
  }
  ASSERT_GE(columns.size(), 2u);
  EXPECT_TRUE(
      std::all_of(columns.begin(), columns.end(), [&](std::size_t c) { return c == columns[0]; }));
}
