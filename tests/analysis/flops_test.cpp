// The MAC counter against closed forms: one op at a time, nesting, and the models' totals
// (WRN-28-10 is ~5.25 GMAC per 32x32 image, issue 7 / Zagoruyko & Komodakis).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "analysis/flops.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp::analysis {
namespace {

TEST(CountMacs, ConvolutionIsOutputTimesKernelVolume) {
  torch::NoGradGuard no_grad;
  // 3 -> 8 channels, 3x3, stride 2, padding 1, on 2 x 3 x 9 x 9: output 2 x 8 x 5 x 5.
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 8, 3).stride(2).padding(1).bias(false));
  auto x = torch::randn({2, 3, 9, 9});
  const auto c = count_macs([&] { conv->forward(x); });
  EXPECT_DOUBLE_EQ(c.total, 2.0 * 8 * 5 * 5 * 3 * 3 * 3);
  EXPECT_EQ(c.calls, 1);  // conv2d -> convolution -> backend kernel counted once
  // Grouped: each output sums over C_in / groups channels.
  torch::nn::Conv2d grouped(torch::nn::Conv2dOptions(8, 8, 3).padding(1).groups(4).bias(false));
  auto y = torch::randn({1, 8, 6, 6});
  EXPECT_DOUBLE_EQ(count_macs([&] { grouped->forward(y); }).total, 1.0 * 8 * 6 * 6 * 2 * 3 * 3);
}

TEST(CountMacs, LinearAndMatrixProducts) {
  torch::NoGradGuard no_grad;
  torch::nn::Linear fc(16, 5);
  auto x = torch::randn({4, 7, 16});  // tokens: every one of 4*7 rows is multiplied
  EXPECT_DOUBLE_EQ(count_macs([&] { fc->forward(x); }).total, 4.0 * 7 * 5 * 16);
  auto a = torch::randn({3, 6, 4}), b = torch::randn({3, 4, 5});
  EXPECT_DOUBLE_EQ(count_macs([&] { torch::matmul(a, b); }).total, 3.0 * 6 * 5 * 4);
  EXPECT_DOUBLE_EQ(count_macs([&] { torch::bmm(a, b); }).total, 3.0 * 6 * 5 * 4);
  auto m = torch::randn({6, 4}), n = torch::randn({4, 5}), c = torch::randn({6, 5});
  EXPECT_DOUBLE_EQ(count_macs([&] { torch::addmm(c, m, n); }).total, 6.0 * 5 * 4);
  // Elementwise work is not counted.
  EXPECT_DOUBLE_EQ(count_macs([&] { torch::relu(a + 1); }).total, 0.0);
}

TEST(CountMacs, CannotBeNestedAndCleansUpAfterAnError) {
  EXPECT_THROW(count_macs([] { count_macs([] {}); }), std::logic_error);
  EXPECT_THROW(count_macs([] { throw std::runtime_error("boom"); }), std::runtime_error);
  torch::NoGradGuard no_grad;
  auto m = torch::randn({2, 3}), n = torch::randn({3, 2});
  EXPECT_DOUBLE_EQ(count_macs([&] { torch::mm(m, n); }).total, 12.0);
}

double model_macs_per_image(const std::string& model_yaml, int64_t classes) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "name: m\ndata: {name: synthetic, classes: " + std::to_string(classes) +
               ", resolution: 32}\nmodel: " + model_yaml + "\nnorm: {name: bn}\n");
  auto b = compose::build(exp, torch::kCPU);
  b.model->eval();
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 3, 32, 32});
  return count_macs([&] { b.model->forward(x); }).total;
}

TEST(CountMacs, PapersModelsMatchTheirKnownCost) {
  // WRN-28-10: 5.25 GMAC per image (the figure issue 7 quotes); ResNet-110: 0.25 GMAC.
  EXPECT_NEAR(model_macs_per_image("{name: wrn, depth: 28, width: 10}", 100) / 1e9, 5.25, 0.02);
  EXPECT_NEAR(model_macs_per_image("{name: resnet, depth: 110}", 10) / 1e9, 0.253, 0.003);
  // cnn9 at width 1, by hand: 32x32: 3->64, 64->64 x2; 16x16: 64->128, 128->128 x2;
  // 8x8: 128->256, 256->256 x2; then a 256 -> 10 classifier.
  const double k = 9;
  const double cnn9 = 1024 * k * (3 * 64 + 2 * 64 * 64) + 256 * k * (64 * 128 + 2 * 128 * 128) +
                      64 * k * (128 * 256 + 2 * 256 * 256) + 256 * 10;
  EXPECT_DOUBLE_EQ(model_macs_per_image("{name: cnn9}", 10), cnn9);
}

}  // namespace
}  // namespace normexp::analysis
