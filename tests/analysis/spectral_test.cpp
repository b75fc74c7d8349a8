// Spectral norms: the conv operator norm against the dense matrix of a tiny conv (with
// stride and padding, where the reshaped-kernel norm is not the answer), the probe scheme's
// per-layer norms and σ recording on a registered model.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "analysis/probe.h"
#include "analysis/spectral.h"
#include "config/test_support.h"
#include "compose/components.h"
#include "registry/builtin.h"
#include "support/ml_support.h"

namespace normexp {
namespace {

double dense_norm(const torch::Tensor& m) {
  return at::linalg_matrix_norm(m, 2, {-2, -1}, false, c10::nullopt).item<double>();
}

TEST(Spectral, MatrixNormMatchesSvd) {
  torch::manual_seed(1);
  auto w = torch::randn({7, 5}, torch::kDouble);
  EXPECT_NEAR(analysis::matrix_spectral_norm(w, 500, 1e-12), dense_norm(w), 1e-6);
}

TEST(Spectral, ConvOperatorNormMatchesTheDenseMatrix) {
  torch::manual_seed(2);
  for (auto [stride, pad] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 1}, {1, 0}}) {
    auto w = torch::randn({3, 2, 3, 3}, torch::kDouble);
    analysis::Conv2dGeometry g;
    g.stride_h = g.stride_w = stride;
    g.pad_h = g.pad_w = pad;
    const std::vector<int64_t> chw{2, 5, 6};
    auto dense = analysis::conv2d_dense_matrix(w, chw, g);
    // The dense matrix really is the conv: apply both to one input.
    auto x = torch::randn({1, 2, 5, 6}, torch::kDouble);
    auto y = torch::conv2d(x, w, {}, stride, pad);
    EXPECT_TRUE(torch::allclose(dense.mv(x.reshape({-1})), y.reshape({-1}), 1e-10, 1e-10));
    const double exact = dense_norm(dense);
    EXPECT_NEAR(analysis::conv2d_spectral_norm(w, chw, g, 2000, 1e-13), exact, 1e-6 * exact)
        << "stride " << stride << " pad " << pad;
    // The reshaped kernel's norm is a different number (why the operator is used).
    EXPECT_GT(std::abs(dense_norm(w.reshape({3, -1})) - exact), 1e-3);
  }
}

TEST(Probe, RecordsConvShapesAndNormInputStdsOnARegisteredModel) {
  torch::manual_seed(0);  // LibTorch seeds its generator differently in every process
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, "model: {name: resnet, depth: 8}\nnorm: {name: bn}\n");
  const auto& reg = registry::norms().get("bn");
  analysis::ProbedScheme scheme(reg.make(exp.section("norm")));
  data::DataShape shape{3, 8, 8, 4};
  auto model = compose::components().model(exp.section("model"), shape, scheme);
  // ResNet-8: 7 convs (stem + 3 blocks x 2), 7 norm layers.
  EXPECT_EQ(scheme.conv_probes().size(), 7u);
  EXPECT_EQ(scheme.norm_probes().size(), 7u);
  model->train();
  scheme.set_recording(true);
  auto x = torch::randn({16, 3, 8, 8}) * 3.0;
  model->forward(x);
  model->forward(x);
  scheme.set_recording(false);
  model->forward(x);  // not recorded
  EXPECT_EQ(scheme.norm_probes()[0]->batches(), 2);
  // The stem norm sees the stem conv's output: its σ is the per-channel std of that output.
  auto stem = scheme.conv_probes()[0]->inner().ptr();
  auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(stem.get());
  ASSERT_NE(conv, nullptr);
  auto expected = conv->forward(x).detach().var({0, 2, 3}, false).sqrt().to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(scheme.norm_probes()[0]->sigma(), expected, 1e-4, 1e-6));
  const auto norms = analysis::layer_norms(scheme, 200);
  ASSERT_EQ(norms.size(), 8u);  // 7 convs + classifier
  // conv3 is layer2.0.conv1 (stride 2, sees 16x8x8), conv4 its second conv (32x4x4).
  EXPECT_EQ(scheme.conv_probes()[3]->input_chw(), (std::vector<int64_t>{16, 8, 8}));
  EXPECT_EQ(scheme.conv_probes()[3]->conv_spec.stride, 2);
  EXPECT_EQ(scheme.conv_probes()[4]->input_chw(), (std::vector<int64_t>{32, 4, 4}));
  for (const auto& n : norms) EXPECT_GT(n.spectral, 0) << n.where;
  // The classifier is a plain matrix: its norm is the SVD's.
  auto* fc = dynamic_cast<torch::nn::LinearImpl*>(scheme.classifier_module().get());
  ASSERT_NE(fc, nullptr);
  EXPECT_NEAR(norms.back().spectral, dense_norm(fc->weight.detach()), 1e-4);
  const auto s = analysis::sigma_summary(scheme);
  EXPECT_EQ(s.sigma_mean.size(), 7u);
  EXPECT_LE(s.log10_inv_sigma_prod, s.log10_inv_sigma_min_prod);
}

TEST(Probe, MeasuresSigmaWhereTheNormWouldBeForNone) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "model: {name: mlp, hidden: [8, 8, 8], norm_layers: 2}\nnorm: {name: none}\n");
  analysis::ProbedScheme scheme(registry::norms().get("none").make(exp.section("norm")));
  auto model = compose::components().model(exp.section("model"), {3, 8, 8, 4}, scheme);
  // norm_layers = 2: two conv+norm positions, the third hidden layer plain.
  EXPECT_EQ(scheme.norm_probes().size(), 2u);
  scheme.set_recording(true);
  model->forward(torch::randn({32, 3, 8, 8}));
  EXPECT_EQ(analysis::sigma_summary(scheme).sigma_mean.size(), 2u);
  EXPECT_EQ(model->forward(torch::randn({5, 3, 8, 8})).sizes(), (std::vector<int64_t>{5, 4}));
}

}  // namespace
}  // namespace normexp
