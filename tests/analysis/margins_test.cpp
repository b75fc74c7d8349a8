// Akbar §8, Experiment 3's measurements (analysis/margins.h) on inputs whose answers are known
// by hand: margins and their summary, the histogram's bins, the accuracy-under-noise curve
// (its noise std, its seeding, the parameters restored) and the tolerance read off it.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "analysis/margins.h"

namespace normexp {
namespace {

TEST(Margins, AreOutputTimesLabelWithTheirSummary) {
  const auto out = torch::tensor({2.0, -1.0, 0.5, -3.0, 1.5}, torch::kDouble).view({5, 1});
  const auto y = torch::tensor({1, 1, -1, -1, 1});
  const auto m = analysis::margins(out, y);
  EXPECT_TRUE(m.equal(torch::tensor({2.0, -1.0, -0.5, 3.0, 1.5}, torch::kDouble)));
  const auto s = analysis::summarize_margins(m);
  EXPECT_DOUBLE_EQ(s.mean, 1.0);
  EXPECT_DOUBLE_EQ(s.median, 1.5);
  EXPECT_DOUBLE_EQ(s.min, -1.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
  // Sample std: squared deviations 1 + 4 + 2.25 + 4 + 0.25 = 11.5, over n - 1 = 4.
  EXPECT_NEAR(s.std, std::sqrt(11.5 / 4), 1e-15);
  EXPECT_DOUBLE_EQ(s.positive_fraction, 0.6);  // = accuracy
}

// Bins are [lo + i w, lo + (i + 1) w): a value belongs to the bin its floor names, the upper
// edge and anything outside [lo, hi] to the end bins. Catches rounding to the nearest bin.
TEST(Margins, HistogramBinsByFloorAndClampsTheEnds) {
  const auto v = torch::tensor({-0.5, 0.0, 0.1, 0.24, 0.25, 0.49, 0.74, 0.99, 1.0, 3.0});
  const auto h = analysis::histogram(v, 0.0, 1.0, 4);
  EXPECT_EQ(h.edges, (std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0}));
  EXPECT_EQ(h.counts, (std::vector<int64_t>{4, 2, 1, 3}));
}

// "Accuracy" here is the std of the perturbed tensor, so the curve reads back the noise
// level itself: N(0, s^2) per entry, a fresh draw per trial, the same draws for the same seed,
// and the parameters restored bit for bit.
TEST(Margins, AccuracyUnderNoiseAddsTheStatedStdAndRestores) {
  torch::manual_seed(0);
  auto p = torch::randn({4000}, torch::kDouble) * 0.01;
  const auto saved = p.clone();
  const std::vector<at::Tensor> params{p};
  auto spread = [&] { return (p - saved).std().item<double>(); };
  const auto c = analysis::accuracy_under_noise(params, spread, {0.0, 0.5, 2.0}, 5, 7);
  EXPECT_TRUE(p.equal(saved));
  ASSERT_EQ(c.stds, (std::vector<double>{0.0, 0.5, 2.0}));
  EXPECT_EQ(c.mean[0], 0.0);  // no noise: one trial, the unperturbed model
  EXPECT_EQ(c.std[0], 0.0);
  EXPECT_NEAR(c.mean[1], 0.5, 0.5 * 0.05);  // std of 4000 draws: ~1.1% relative error
  EXPECT_NEAR(c.mean[2], 2.0, 2.0 * 0.05);
  EXPECT_GT(c.std[1], 0.0);  // fresh draws per trial
  const auto again = analysis::accuracy_under_noise(params, spread, {0.0, 0.5, 2.0}, 5, 7);
  EXPECT_EQ(again.mean, c.mean);
  const auto other = analysis::accuracy_under_noise(params, spread, {0.0, 0.5, 2.0}, 5, 8);
  EXPECT_NE(other.mean[1], c.mean[1]);
}

TEST(Margins, NoiseToleranceInterpolatesTheFirstCrossing) {
  analysis::NoiseCurve c;
  c.stds = {0.0, 0.1, 0.2, 0.3};
  c.mean = {0.9, 0.8, 0.4, 0.7};
  EXPECT_NEAR(analysis::noise_tolerance(c, 0.6), 0.15, 1e-12);  // 0.1 + (0.8-0.6)/(0.8-0.4)*0.1
  EXPECT_DOUBLE_EQ(analysis::noise_tolerance(c, 0.95), 0.0);    // below from the start
  EXPECT_DOUBLE_EQ(analysis::noise_tolerance(c, 0.3), 0.3);     // never below: the grid's end
}

}  // namespace
}  // namespace normexp
