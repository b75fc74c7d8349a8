// The Than 2025 capacity task end to end on tiny synthetic data: per-epoch history with
// weight-norm products and ∏ 1/σ_k, for a normalized MLP (k of its hidden layers) and an
// unnormalized ResNet (σ measured where the norms would be).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "compose/run.h"
#include "support/ml_support.h"

namespace normexp {
namespace {

using nlohmann::json;

const char* kCapacity = R"(name: cap
task: {name: capacity, spectral_iters: 10}
data: {name: synthetic, classes: 4, train_size: 128, test_size: 64, resolution: 8, shift: 1, noise: 0.5}
model: {name: mlp, hidden: [32, 32, 32], norm_layers: 2}
norm: {name: bn}
optim: {name: sgd, lr: 0.05}
schedule: {name: cosine}
train: {epochs: 2, batch_size: 32, progress: none, threads: 1}
)";

std::vector<json> history(const std::filesystem::path& dir) {
  std::vector<json> rows;
  std::ifstream in(dir / "history.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

compose::RunResult run(const testing::TempDir& dir, std::vector<std::string> sets) {
  sets.push_back("output.root=" + (dir.path() / "results").string());
  auto exp = testing::experiment_from(dir, kCapacity, sets);
  return compose::run_experiment(exp);
}

TEST(Capacity, NormalizedMlpHistoryHasWeightNormsAndSigmas) {
  testing::TempDir dir;
  auto r = run(dir, {});
  ASSERT_EQ(r.status, experiments::TaskStatus::Completed);
  const auto rows = history(r.dir);
  ASSERT_EQ(rows.size(), 3u);  // epoch 0 (initialization) + 2 epochs
  for (const auto& row : rows) {
    for (const char* key :
         {"log10_weight_norm_prod", "log10_inv_sigma_prod", "log10_lipschitz_bound", "test_err"})
      EXPECT_TRUE(std::isfinite(row[key].get<double>())) << key;
  }
  EXPECT_TRUE(rows.back().contains("gap"));
  const auto metrics = json::parse(read_file(r.dir / "metrics.json"));
  const auto& res = metrics["results"];
  EXPECT_EQ(res["normalized_layers"], 2);  // norm_layers: 2 of 3 hidden layers
  EXPECT_EQ(res["norm_positions"], 2);
  EXPECT_EQ(res["weight_layers"],
            3);  // 2 scheme convs + classifier (the plain layer is not a scheme conv)
  EXPECT_TRUE(std::filesystem::exists(r.dir / "sigma.dat"));
}

// The history's products are the sums of the per-layer logs that sigma.dat lists: ∏ 1/σ_k
// over every norm position (mean and smallest σ of each), and the Lipschitz bound of Than
// 2025 Corollary 10, ∏‖W_i‖ · ∏ 1/min σ_k over the normalizing layers. Catches a sign
// flipped in a sum, or min and mean swapped. (That positions which do not normalize stay out
// of the bound is checked on the unnormalized ResNet below.)
TEST(Capacity, ProductsAreTheSumsOfTheLayersLogs) {
  testing::TempDir dir;
  auto r = run(dir, {"model.norm_layers=2"});
  ASSERT_EQ(r.status, experiments::TaskStatus::Completed);
  std::map<int64_t, double> inv_mean, inv_min, inv_min_normalized;
  std::ifstream in(r.dir / "sigma.dat");
  std::string line;
  int positions = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    int64_t epoch = 0, layer = 0, normalized = 0;
    std::string where;
    double mean = 0, min = 0;
    ASSERT_TRUE(fields >> epoch >> layer >> where >> mean >> min >> normalized) << line;
    ASSERT_GT(min, 0.0) << line;
    EXPECT_LE(min, mean) << line;
    inv_mean[epoch] -= std::log10(mean);
    inv_min[epoch] -= std::log10(min);
    if (normalized) inv_min_normalized[epoch] -= std::log10(min);
    positions += epoch == 0;
  }
  EXPECT_EQ(positions, 2);
  const auto rows = history(r.dir);
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& row : rows) {
    const int64_t e = row["epoch"].get<int64_t>();
    SCOPED_TRACE("epoch " + std::to_string(e));
    ASSERT_TRUE(inv_mean.count(e));
    EXPECT_NEAR(row["log10_inv_sigma_prod"].get<double>(), inv_mean[e], 1e-4);
    EXPECT_NEAR(row["log10_inv_sigma_min_prod"].get<double>(), inv_min[e], 1e-4);
    EXPECT_NEAR(row["log10_lipschitz_bound"].get<double>() -
                    row["log10_weight_norm_prod"].get<double>(),
                inv_min_normalized[e], 1e-4);
  }
}

TEST(Capacity, UnnormalizedResnetMeasuresSigmaAtTheNormPositions) {
  // Plain, and with SkipInit: its per-channel scale at the end of each branch sits where the
  // branch's last BN would be, but divides by nothing, so it must neither count as a
  // normalization layer nor put its 1/σ into the Lipschitz bound.
  for (const std::vector<std::string>& options :
       {std::vector<std::string>{},
        std::vector<std::string>{"norm.conv_init=he", "norm.skip_init=true"}}) {
    SCOPED_TRACE(options.empty() ? "plain" : "skip_init");
    testing::TempDir dir;
    std::vector<std::string> sets{"~model", "model.name=resnet", "model.depth=8",
                                  "norm.name=none", "train.epochs=1"};
    sets.insert(sets.end(), options.begin(), options.end());
    auto r = run(dir, sets);
    ASSERT_EQ(r.status, experiments::TaskStatus::Completed);
    const auto metrics = json::parse(read_file(r.dir / "metrics.json"));
    const auto& res = metrics["results"];
    EXPECT_EQ(res["norm_positions"], 7);
    EXPECT_EQ(res["normalized_layers"], 0);
    EXPECT_EQ(res["weight_layers"], 8);
    // σ was measured at every position, the residual ones included...
    EXPECT_TRUE(std::isfinite(res["log10_inv_sigma_prod"].get<double>()));
    EXPECT_NE(res["log10_inv_sigma_prod"].get<double>(), 0.0);
    // ...but without normalization the bound is the weight-norm product alone.
    EXPECT_DOUBLE_EQ(res["log10_lipschitz_bound"].get<double>(),
                     res["log10_weight_norm_prod"].get<double>());
  }
}

}  // namespace
}  // namespace normexp
