// Every config shipped in configs/ resolves and builds (models constructed, no data read).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "compose/run.h"
#include "registry/builtin.h"
#include "compose/components.h"

namespace normexp {
namespace {

std::vector<std::filesystem::path> shipped_configs() {
  std::vector<std::filesystem::path> out;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(std::filesystem::path(NORMEXP_SOURCE_DIR) / "configs"))
    if (e.is_regular_file() && e.path().extension() == ".yaml" &&
        e.path().parent_path().filename() != "tables")  // report specs (tests/report), not experiments
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Configs, EveryShippedConfigResolvesAndBuilds) {
  const auto configs = shipped_configs();
  ASSERT_GE(configs.size(), 30u);
  for (const auto& path : configs) {
    SCOPED_TRACE(path.string());
    try {
      auto exp = config::load_experiment(path, {}, registry::experiment_schema());
      torch::NoGradGuard no_grad;
      compose::check_experiment(exp);  // every task's check (classify: the full build)
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(Configs, Table1CellsFollowThePaper) {
  // Spot checks against Ikami et al. 2021 §4.1.1 and Table 1's settings.
  const auto dir = std::filesystem::path(NORMEXP_SOURCE_DIR) / "configs" / "ikami" / "table1";
  auto load = [&](const std::string& cell) {
    return config::load_experiment(dir / (cell + ".yaml"), {}, registry::experiment_schema());
  };
  auto wrn = load("cifar100_wrn28_10_cwo");
  EXPECT_EQ(wrn.section("model").get_string("name"), "wrn");
  EXPECT_EQ(wrn.section("model").get_int("depth"), 28);
  EXPECT_EQ(wrn.section("model").get_int("width"), 10);
  EXPECT_EQ(wrn.section("data").get_string("name"), "cifar100");
  EXPECT_EQ(wrn.section("norm").get_string("noise.schedule"), "linear");
  EXPECT_DOUBLE_EQ(wrn.section("norm").get_float("noise.sigma"), 1.0);
  EXPECT_DOUBLE_EQ(wrn.section("optim").get_float("lr"), 0.2);
  EXPECT_DOUBLE_EQ(wrn.section("optim").get_float("weight_decay"), 5e-3);
  EXPECT_DOUBLE_EQ(wrn.section("optim").get_float("momentum"), 0.9);
  EXPECT_EQ(wrn.section("train").get_int("epochs"), 200);
  EXPECT_EQ(wrn.section("train").get_int("batch_size"), 128);
  EXPECT_EQ(wrn.section("schedule").get_string("name"), "cosine");
  auto cnn = load("cifar10_cnn9_cwo");
  EXPECT_DOUBLE_EQ(cnn.section("optim").get_float("lr"), 0.1);
  EXPECT_DOUBLE_EQ(cnn.section("optim").get_float("weight_decay"), 1e-3);
  EXPECT_EQ(cnn.section("norm").get_string("noise.schedule"), "constant");
  auto resnet = load("cifar100_resnet110_cwo");
  EXPECT_EQ(resnet.section("model").get_int("depth"), 110);
  EXPECT_DOUBLE_EQ(resnet.section("optim").get_float("lr"), 0.2);
  EXPECT_DOUBLE_EQ(resnet.section("optim").get_float("weight_decay"), 1e-3);
  auto gn = load("cifar100_wrn28_10_gn");
  EXPECT_EQ(gn.section("norm").get_int("groups"), 16);
  // The headline config is the Table 1 cell under another name: same experiment hash.
  auto headline = config::load_experiment(
      std::filesystem::path(NORMEXP_SOURCE_DIR) / "configs" / "cifar100_wrn.yaml", {},
      registry::experiment_schema());
  EXPECT_EQ(headline.hash(), wrn.hash());
}

}  // namespace
}  // namespace normexp
