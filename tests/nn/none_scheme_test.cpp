// The `none` scheme's two initialization options, which decide whether an unnormalized net
// trains at all (and so whether Than 2025's "∏‖W_i‖ grows without normalization" is tested on a
// net that learns): conv_init: he keeps the activations' scale through depth, and skip_init
// makes every residual block the identity at initialization.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <regex>
#include <string>

#include "compose/components.h"
#include "nn/layers.h"
#include "support/ml_support.h"

namespace normexp {
namespace {

const c10::Device kCpu(c10::kCPU);

train::Components build(const testing::TempDir& dir, const std::string& model,
                        const std::string& norm) {
  auto exp = testing::experiment_from(
      dir, "data: {name: synthetic, classes: 5, resolution: 16, train_size: 16, test_size: 8}\n"
           "model: {name: " + model + testing::narrow_model_options(model) + "}\n"
           "norm: " + norm + "\noptim: {name: sgd, lr: 0.05}\n");
  return compose::build(exp, kCpu);
}

// How much the last hidden layer of an 8-layer plain MLP of width 256 still depends on its
// input: the features' standard deviation over 512 unit Gaussian inputs (whose own is 1),
// averaged over the units. (Their RMS would also count the biases' constant part.)
double deep_mlp_feature_spread(const std::string& conv_init) {
  testing::TempDir dir;
  torch::manual_seed(0);
  auto exp = testing::experiment_from(
      dir, "data: {name: synthetic, classes: 5, resolution: 8, train_size: 16, test_size: 8}\n"
           "model: {name: mlp, hidden: [256, 256, 256, 256, 256, 256, 256, 256]}\n"
           "norm: {name: none, conv_init: " + conv_init + "}\n");
  auto b = compose::build(exp, kCpu);
  torch::NoGradGuard no_grad;
  const auto shape = b.dataset->shape();
  auto x = torch::randn({512, shape.channels, shape.height, shape.width});
  return b.model->features(x).std(0).mean().item<double>();
}

TEST(NoneScheme, HeInitKeepsTheSignalThroughADeepPlainNet) {
  // He et al. 2015: Var(w) = 2/fan_in makes E[relu(Wx)^2] = E[x^2] layer after layer.
  // PyTorch's default (variance 1/(3 fan_in)) divides it by 6 per layer: 6^-4 in scale
  // after 8 layers, and what is left is mostly the (input-independent) biases.
  const double he = deep_mlp_feature_spread("he");
  const double fallback = deep_mlp_feature_spread("default");
  std::printf("feature spread after 8 layers: he %.3g, default %.3g\n", he, fallback);
  EXPECT_GT(he, 0.2);  // measured 0.37: depth also correlates the inputs (ReLU nets do)
  EXPECT_LT(he, 2.0);
  EXPECT_LT(fallback, 0.01);
}

// Every conv inside a residual branch ("<stage>.<block>.convK.weight" in resnet, resnet_v1
// and wrn; the stem is the top-level conv1, the shortcuts are named otherwise).
bool in_branch(const std::string& name) {
  static const std::regex branch_conv(R"(\.\d+\.conv\d\.weight$)");
  return std::regex_search(name, branch_conv);
}

// How far the output moves when every branch conv's weights are redrawn.
double output_change_when_branches_change(train::Components& b) {
  torch::manual_seed(1);
  const auto shape = b.dataset->shape();
  auto x = torch::randn({4, shape.channels, shape.height, shape.width});
  b.model->eval();
  torch::NoGradGuard no_grad;
  const auto before = b.model->forward(x);
  int redrawn = 0;
  for (auto& p : b.model->named_parameters()) {
    if (!in_branch(p.key())) continue;
    p.value().normal_(0.0, 0.5);
    ++redrawn;
  }
  EXPECT_GE(redrawn, 6) << "no branch convs found: the name pattern no longer matches";
  return (b.model->forward(x) - before).abs().max().item<double>();
}

TEST(NoneScheme, SkipInitStartsEveryResidualBlockAsTheIdentity) {
  for (const std::string model : {"resnet_v1", "resnet", "wrn"}) {
    SCOPED_TRACE(model);
    testing::TempDir dir;
    auto skip = build(dir, model, "{name: none, conv_init: he, skip_init: true}");
    int scales = 0;
    for (const auto& m : skip.model->modules(/*include_self=*/false)) {
      if (auto* s = dynamic_cast<nn::ChannelScaleImpl*>(m.get())) {
        EXPECT_EQ(s->weight.abs().max().item<double>(), 0.0);
        ++scales;
      }
    }
    EXPECT_GE(scales, 3);  // one per residual block
    // The blocks compute x + 0 * branch(x): their branch weights do not matter yet...
    EXPECT_EQ(output_change_when_branches_change(skip), 0.0);
    // ...while without SkipInit they do (so the check above can fail).
    auto plain = build(dir, model, "{name: none, conv_init: he}");
    EXPECT_GT(output_change_when_branches_change(plain), 1e-3);
  }
}

}  // namespace
}  // namespace normexp
