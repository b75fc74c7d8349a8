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
  // Than's prod 1/sigma_k over the layers, from each layer's mean and each layer's smallest
  // per-channel sigma, recomputed here from the probes.
  double inv_mean = 0, inv_min = 0;
  for (const auto& p : scheme.norm_probes()) {
    inv_mean -= std::log10(p->sigma().mean().item<double>());
    inv_min -= std::log10(p->sigma().min().item<double>());
  }
  EXPECT_NEAR(s.log10_inv_sigma_prod, inv_mean, 1e-9);
  EXPECT_NEAR(s.log10_inv_sigma_min_prod, inv_min, 1e-9);
  EXPECT_GT(inv_min - inv_mean, 0.1);  // the two differ: the test can tell them apart
}

// The per-layer norms the capacity task reports are the norms of the operators the model
// applies: each conv's Jacobian, built column by column from the layer's own forward on a
// basis of its input space (padding included, and for weight-standardized convs the
// standardized weight the layer really uses, not the raw one).
TEST(Probe, ConvNormsAreThoseOfTheOperatorsTheLayersApply) {
  for (const char* norm : {"bn", "ws_bn"}) {
    torch::manual_seed(0);
    testing::TempDir dir;
    auto exp = testing::experiment_from(
        dir, std::string("model: {name: resnet, depth: 8}\nnorm: {name: ") + norm + "}\n");
    analysis::ProbedScheme scheme(registry::norms().get(norm).make(exp.section("norm")));
    auto model = compose::components().model(exp.section("model"), {3, 6, 6, 4}, scheme);
    model->eval();
    torch::NoGradGuard no_grad;
    model->forward(torch::randn({2, 3, 6, 6}));
    const auto norms = analysis::layer_norms(scheme, 3000);
    for (size_t k : {size_t{0}, size_t{3}}) {  // the stem (pad 1), a stride-2 conv (pad 1)
      const auto& probe = scheme.conv_probes()[k];
      const auto& chw = probe->input_chw();
      const int64_t n = chw[0] * chw[1] * chw[2];
      auto basis = torch::eye(n).view({n, chw[0], chw[1], chw[2]});
      torch::nn::AnyModule layer = probe->inner();  // the same module (AnyModule copies share it)
      auto jacobian = layer.forward(basis).reshape({n, -1}).to(torch::kDouble);
      const double exact = dense_norm(jacobian);
      EXPECT_NEAR(norms[k].spectral, exact, 2e-3 * exact) << norm << " conv " << k;
    }
  }
}

// A token norm's sigma is per feature (the last axis), over every sample and token; a conv
// map's is per channel (axis 1), over samples and positions.
TEST(Probe, SigmaIsPerFeatureForTokensAndPerChannelForMaps) {
  torch::manual_seed(0);
  auto x = torch::randn({3, 5, 4}) * torch::tensor({1.0, 2.0, 3.0, 4.0});
  analysis::Probe tokens(analysis::ProbeKind::TokenNorm, "t",
                         torch::nn::AnyModule(torch::nn::Identity()));
  tokens->set_recording(true);
  tokens->forward(x);
  ASSERT_EQ(tokens->sigma().numel(), 4);
  const auto per_feature = x.var(std::vector<int64_t>{0, 1}, false).sqrt();
  EXPECT_TRUE(torch::allclose(tokens->sigma(), per_feature.to(torch::kDouble), 1e-5, 1e-6));
  const auto scales = torch::tensor({1.0, 2.0, 3.0, 4.0});
  auto maps = torch::randn({3, 4, 2, 5}) * scales.view({1, 4, 1, 1});
  analysis::Probe channels(analysis::ProbeKind::Norm, "c",
                           torch::nn::AnyModule(torch::nn::Identity()));
  channels->set_recording(true);
  channels->forward(maps);
  ASSERT_EQ(channels->sigma().numel(), 4);
  const auto per_channel = maps.var(std::vector<int64_t>{0, 2, 3}, false).sqrt();
  EXPECT_TRUE(torch::allclose(channels->sigma(), per_channel.to(torch::kDouble), 1e-5, 1e-6));
}

TEST(Probe, MeasuresSigmaWhereTheNormWouldBeForNone) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "model: {name: mlp, hidden: [8, 8, 8], norm_layers: 2}\nnorm: {name: none}\n");
  analysis::ProbedScheme scheme(registry::norms().get("none").make(exp.section("norm")));
  auto model = compose::components().model(exp.section("model"), {3, 8, 8, 4}, scheme);
  // norm_layers = 2: two conv+norm positions, counted from the input (features 0-2 and 3-5
  // are conv, norm, ReLU), the third hidden layer plain.
  ASSERT_EQ(scheme.norm_probes().size(), 2u);
  EXPECT_EQ(scheme.norm_probes()[0]->where(), "features.1");
  EXPECT_EQ(scheme.norm_probes()[1]->where(), "features.4");
  scheme.set_recording(true);
  model->forward(torch::randn({32, 3, 8, 8}));
  EXPECT_EQ(analysis::sigma_summary(scheme).sigma_mean.size(), 2u);
  EXPECT_EQ(model->forward(torch::randn({5, 3, 8, 8})).sizes(), (std::vector<int64_t>{5, 4}));
}

}  // namespace
}  // namespace normexp
