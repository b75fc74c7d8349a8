// Weight Standardization (Qiao et al. 2019) and the ws_bn / ws_gn / gn schemes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "nn/layers.h"
#include "nn/params.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp::nn {
namespace {

TEST(WSConv2d, StandardizedFiltersHaveZeroMeanAndUnitVariance) {
  torch::manual_seed(0);
  WSConv2d conv(torch::nn::Conv2dOptions(5, 8, 3).bias(false), 1e-5);
  {
    torch::NoGradGuard no_grad;
    conv->weight.normal_(0.3, 2.0);  // an offset and a scale the standardization removes
  }
  auto w = conv->standardized_weight().flatten(1).to(torch::kDouble);
  EXPECT_LT(w.mean(1).abs().max().item<double>(), 1e-6);
  // var(w_hat) = var(w) / (var(w) + eps): 1 up to eps / var(w) ~ 2.5e-6 here.
  auto raw = conv->weight.detach().flatten(1).to(torch::kDouble);
  auto raw_var = (raw - raw.mean(1, true)).pow(2).mean(1);
  auto var = (w - w.mean(1, true)).pow(2).mean(1);
  EXPECT_TRUE(torch::allclose(var, raw_var / (raw_var + 1e-5), 1e-5, 1e-7));
  EXPECT_LT((var - 1.0).abs().max().item<double>(), 1e-5);
}

TEST(WSConv2d, ForwardIsAConvolutionWithTheStandardizedWeight) {
  torch::manual_seed(1);
  WSConv2d conv(torch::nn::Conv2dOptions(3, 4, 3).stride(2).padding(1).bias(true), 1e-5);
  {
    torch::NoGradGuard no_grad;
    conv->weight.normal_();  // unit variance: eps shifts the scale by only ~5e-6
  }
  auto x = torch::randn({2, 3, 9, 9});
  auto expected = torch::conv2d(x, conv->standardized_weight(), conv->bias, {2, 2}, {1, 1});
  EXPECT_TRUE(torch::allclose(conv->forward(x), expected, 1e-5, 1e-6));
  // The standardized weight does not depend on the raw weight's offset and scale per filter.
  auto before = conv->forward(x);
  {
    torch::NoGradGuard no_grad;
    conv->weight.mul_(7.0).add_(-0.5);
  }
  EXPECT_TRUE(torch::allclose(conv->forward(x), before, 1e-4, 1e-5));
}

TEST(WSConv2d, GradientMatchesCentralFiniteDifferences) {
  torch::manual_seed(2);
  WSConv2d conv(torch::nn::Conv2dOptions(3, 2, 3).padding(1).bias(false), 1e-5);
  conv->to(torch::kDouble);
  auto x = torch::randn({2, 3, 5, 5}, torch::kDouble);
  auto r = torch::randn({2, 2, 5, 5}, torch::kDouble);  // loss = <conv(x), r>
  auto loss_at = [&] { return (conv->forward(x) * r).sum(); };

  conv->zero_grad();
  loss_at().backward();
  auto grad = conv->weight.grad().clone();

  const double h = 1e-6;
  auto fd = torch::zeros_like(grad);
  auto w = conv->weight.detach().view({-1});
  auto fd_flat = fd.view({-1});
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double w0 = w[i].item<double>();
    w[i] = w0 + h;
    const double up = loss_at().item<double>();
    w[i] = w0 - h;
    const double down = loss_at().item<double>();
    w[i] = w0;
    fd_flat[i] = (up - down) / (2 * h);
  }
  const double scale = grad.abs().max().item<double>();
  ASSERT_GT(scale, 1e-3);
  EXPECT_LT((grad - fd).abs().max().item<double>(), 1e-6 * scale)
      << "autograd\n" << grad << "\nfinite differences\n" << fd;
  // Standardization is invariant to a per-filter offset, so each filter's gradient sums to 0.
  EXPECT_LT(grad.flatten(1).sum(1).abs().max().item<double>(), 1e-9 * scale * grad.size(1));
}

// Counts modules of type M in the model.
template <class M>
int count(torch::nn::Module& model) {
  int n = 0;
  for (const auto& m : model.modules())
    if (dynamic_cast<M*>(m.get())) ++n;
  return n;
}

train::Components build(const std::string& norm) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "data: {name: synthetic, classes: 5, resolution: 8, train_size: 16, test_size: 8}\n"
           "model: {name: resnet, depth: 8}\nnorm: {" + norm + "}\n");
  return compose::build(exp, c10::Device(c10::kCPU));
}

TEST(WsSchemes, BuildStandardizedConvsBeforeTheirActivationNorm) {
  // resnet-8: 7 convs, each followed by a norm (option A shortcuts have none).
  auto ws_bn = build("name: ws_bn, ws_eps: 1.0e-4");
  EXPECT_EQ(count<WSConv2dImpl>(*ws_bn.model), 7);
  EXPECT_EQ(count<torch::nn::BatchNorm2dImpl>(*ws_bn.model), 7);
  for (const auto& m : ws_bn.model->modules())
    if (auto* c = dynamic_cast<WSConv2dImpl*>(m.get())) EXPECT_DOUBLE_EQ(c->eps(), 1e-4);

  auto ws_gn = build("name: ws_gn, groups: 8");
  EXPECT_EQ(count<WSConv2dImpl>(*ws_gn.model), 7);
  EXPECT_EQ(count<torch::nn::GroupNormImpl>(*ws_gn.model), 7);
  auto gn = build("name: gn");
  EXPECT_EQ(count<WSConv2dImpl>(*gn.model), 0);
  for (const auto& m : gn.model->modules())
    if (auto* g = dynamic_cast<torch::nn::GroupNormImpl*>(m.get()))
      EXPECT_EQ(g->options.num_groups(), 16);  // Ikami et al. 2021 §4.1.1
}

TEST(WsSchemes, ParameterRolesDecayConvWeightsButNotNormAffines) {
  for (const std::string norm : {"name: gn", "name: ws_bn", "name: ws_gn"}) {
    SCOPED_TRACE(norm);
    auto b = build(norm);
    int weights = 0, affine = 0;
    for (const auto& p : classify_parameters(*b.model)) {
      const bool classifier = p.name.rfind("classifier.", 0) == 0;
      if (p.tensor.dim() == 4) {
        EXPECT_EQ(p.role, ParamRole::Weight) << p.name;
        ++weights;
      } else if (!classifier) {
        EXPECT_EQ(p.role, ParamRole::NormAffine) << p.name;  // GroupNorm/BatchNorm gamma, beta
        ++affine;
      }
    }
    EXPECT_EQ(weights, 7);
    EXPECT_EQ(affine, 14);
  }
}

TEST(WsSchemes, WsGnTrainsAStepWithFiniteLoss) {
  auto b = build("name: ws_gn");
  auto x = torch::randn({4, 3, 8, 8});
  auto y = torch::tensor({0, 1, 2, 3}, torch::kLong);
  auto loss = torch::nn::functional::cross_entropy(b.model->forward(x), y);
  b.optimizer->zero_grad();
  loss.backward();
  b.optimizer->step(0.1);
  auto after = torch::nn::functional::cross_entropy(b.model->forward(x), y);
  EXPECT_TRUE(std::isfinite(after.item<double>()));
}

}  // namespace
}  // namespace normexp::nn
