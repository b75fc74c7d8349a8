// Per-layer diagnostics (train.monitor_every) and divergence reports, end to end on tiny runs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"
#include "train/monitor.h"

namespace normexp::train {
namespace {

std::vector<nlohmann::json> jsonl(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(Monitor, SamplesEveryNthStepWithStatsThatMatchTheModel) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"output.root=" + (dir.path() / "res").string(),
                                       "train.epochs=2", "train.monitor_every=3"});
  auto result = compose::run_experiment(exp);
  ASSERT_EQ(result.status, RunStatus::Completed);
  const auto rows = jsonl(result.dir / "diagnostics.jsonl");
  // 16 steps: step 1, then every 3rd.
  std::vector<int64_t> steps;
  for (const auto& r : rows) steps.push_back(r["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 3, 6, 9, 12, 15}));
  // cnn9: 9 convs, 9 norms, the classifier, in forward order.
  const auto& layers = rows.back()["layers"];
  ASSERT_EQ(layers.size(), 19u);
  EXPECT_EQ(layers[0]["layer"], "conv0");
  EXPECT_EQ(layers[1]["layer"], "features.1");
  EXPECT_EQ(layers[1]["kind"], "norm");
  EXPECT_EQ(layers[18]["layer"], "classifier");
  for (const auto& r : rows) {
    // The classifier's output is the logits: two measurements of one tensor.
    EXPECT_NEAR(r["layers"][18]["out_rms"].get<double>(), r["logit_rms"].get<double>(), 1e-6);
    for (const auto& l : r["layers"]) {
      EXPECT_GT(l["out_rms"].get<double>(), 0.0) << l;
      EXPECT_GE(l["out_absmax"].get<double>(), l["out_rms"].get<double>()) << l;
      EXPECT_GT(l["out_grad_rms"].get<double>(), 0.0) << l;
    }
  }
  // cwo's conv rows live on the sphere ||w||^2 = 2: RMS over a row of n entries is sqrt(2/n),
  // and conv0 has 3 x 3 x 3 inputs per row.
  EXPECT_NEAR(layers[0]["weight_rms"].get<double>(), std::sqrt(2.0 / 27), 1e-5);
  EXPECT_TRUE(layers[0]["bias_rms"].is_null());  // cwo's convs have no bias
  EXPECT_LT(layers[0]["weight_mean_share"].get<double>(), 1e-6);  // and their rows are centered
  EXPECT_TRUE(layers[1]["weight_mean_share"].is_null());           // gamma is a vector

  // The epoch's last sample is in history.jsonl, not in metrics.json.
  const auto history = jsonl(result.dir / "history.jsonl");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1]["monitor"]["step"], 15);
  const auto m = nlohmann::json::parse(read_file(result.dir / "metrics.json"));
  EXPECT_FALSE(m["history"][1].contains("monitor"));
}

// (1ᵀw)²/(n‖w‖²) per row, averaged: a row that sums its input (1), an alternating row (0) and
// a one-hot row (1/n), against the numbers worked by hand.
TEST(Monitor, WeightMeanShareIsEachRowsEnergyAlongTheOnesDirection) {
  torch::nn::Linear linear(torch::nn::LinearOptions(4, 3).bias(false));
  {
    torch::NoGradGuard no_grad;
    linear->weight.copy_(torch::tensor({1.0, 1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0, 2.0, 0.0, 0.0, 0.0})
                             .view({3, 4}));
  }
  Watch watch("fc", "classifier", torch::nn::AnyModule(linear));
  const auto stats = watch->stats();
  ASSERT_EQ(stats.numel(), kLayerStats);
  EXPECT_EQ(std::string(kLayerStatNames[9]), "weight_mean_share");
  EXPECT_NEAR(stats[9].item<double>(), (1.0 + 0.0 + 0.25) / 3, 1e-6);
}

TEST(Monitor, GammaStatsAreTheAffineParameters) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"output.root=" + (dir.path() / "res").string(),
                                       "train.epochs=1", "train.monitor_every=100"});
  auto result = compose::run_experiment(exp);
  ASSERT_EQ(result.status, RunStatus::Completed);
  const auto rows = jsonl(result.dir / "diagnostics.jsonl");
  ASSERT_EQ(rows.size(), 1u);  // step 1 only
  // After one step from gamma = 1, beta = 0, every gamma is near 1 and every beta near 0.
  for (const auto& l : rows[0]["layers"]) {
    if (l["kind"] != "norm") continue;
    EXPECT_NEAR(l["weight_rms"].get<double>(), 1.0, 0.05) << l;
    EXPECT_LT(l["bias_absmax"].get<double>(), 0.05) << l;
    EXPECT_GT(l["bias_grad_rms"].get<double>(), 0.0) << l;
  }
}

TEST(Monitor, DivergenceNamesTheStepAndTheLayer) {
  // The same deterministic CPU run twice: checked at every step (every loss sampled), then
  // unmonitored, where the step must still be exact and the layer found post mortem.
  int64_t first_bad = -1;
  for (const int every : {1, 0}) {
    SCOPED_TRACE("monitor_every " + std::to_string(every));
    testing::TempDir dir;
    // A learning rate of 1e30 overflows the affine scales within a few steps.
    auto exp = testing::experiment_from(
        dir, testing::kTinyYaml,
        {"output.root=" + (dir.path() / "res").string(), "optim.lr=1e30", "train.epochs=3",
         "train.monitor_every=" + std::to_string(every)});
    auto result = compose::run_experiment(exp);
    ASSERT_EQ(result.status, RunStatus::Diverged);
    const auto m = nlohmann::json::parse(read_file(result.dir / "metrics.json"));
    ASSERT_TRUE(m.contains("divergence")) << m.dump(2);
    const auto& d = m["divergence"];
    ASSERT_TRUE(d["first_nonfinite"].contains("output")) << d;
    EXPECT_FALSE(d["first_nonfinite"]["output"]["layer"].get<std::string>().empty());
    EXPECT_TRUE(d.contains("first_nonfinite_parameter")) << d;
    if (every == 1) {
      // Every step sampled: the first step whose loss is null (not finite) is the one named,
      // its predecessor was finite, and the output check fired at that very step.
      const auto rows = jsonl(result.dir / "diagnostics.jsonl");
      for (size_t i = 0; i < rows.size() && first_bad < 0; ++i)
        if (rows[i]["loss"].is_null()) first_bad = rows[i]["step"].get<int64_t>();
      ASSERT_GT(first_bad, 1) << "the first step's loss is finite before any update";
      EXPECT_EQ(d["step"], first_bad) << d;
      EXPECT_EQ(d["first_nonfinite"]["output"]["step"], first_bad) << d;
    } else {
      EXPECT_EQ(d["step"], first_bad) << d;  // kept on the device, read after the fact
      EXPECT_NE(d["method"].get<std::string>().find("post-mortem"), std::string::npos);
      EXPECT_FALSE(std::filesystem::exists(result.dir / "diagnostics.jsonl"));
    }
  }
}

TEST(Monitor, ResumedRunDoesNotRepeatSamples) {
  // Interrupted mid epoch 2 (step 11: its sample 10, not yet written, is redone), and at the
  // end of epoch 1 (step 8: its sample 8 is written and the checkpoint is at that very step,
  // so it must be kept, and once).
  for (const int64_t stop_at : {11, 8}) {
    testing::TempDir dir;
    const std::vector<std::string> sets{"output.root=" + (dir.path() / "res").string(),
                                        "train.epochs=2", "train.monitor_every=2",
                                        "train.checkpoint_every=1"};
    auto exp = testing::experiment_from(dir, testing::kTinyYaml, sets);
    compose::RunOptions interrupt;
    interrupt.interrupt_at_step = stop_at;
    ASSERT_EQ(compose::run_experiment(exp, interrupt).status, RunStatus::Interrupted);
    compose::RunOptions resume;
    resume.resume = true;
    auto result = compose::run_experiment(exp, resume);
    ASSERT_EQ(result.status, RunStatus::Completed);
    std::vector<int64_t> steps;
    for (const auto& r : jsonl(result.dir / "diagnostics.jsonl")) steps.push_back(r["step"]);
    EXPECT_EQ(steps, (std::vector<int64_t>{1, 2, 4, 6, 8, 10, 12, 14, 16}))
        << "stop at " << stop_at;
  }
}

}  // namespace
}  // namespace normexp::train
