// "A new scheme is one file and one registration line": this file is a whole scheme with a
// norm layer of a type normexp has never seen, registered with the one line below. The
// every-model x every-scheme tests (registry_test, gradient_flow_test) then build, run and
// train it with every model, because the registration runs before any test does; the tests
// here check what those loops cannot see: its parameters get the norm role by the NormLayer
// mark (nn/layers.h), not by a list of types.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compose/components.h"
#include "nn/params.h"
#include "nn/schemes/schemes.h"
#include "registry/builtin.h"
#include "support/ml_support.h"

namespace normexp::nn {
namespace {

// y = γ x / rms(x) + β, the RMS over every non-batch element of a sample (Zhang & Sennrich
// 2019's RMSNorm applied per sample, per-channel γ and β).
class ToyRmsNormImpl : public torch::nn::Cloneable<ToyRmsNormImpl>, public NormLayer {
 public:
  explicit ToyRmsNormImpl(int64_t channels) : channels_(channels) { reset(); }
  void reset() override {
    gamma = register_parameter("gamma", torch::ones({channels_}));
    beta = register_parameter("beta", torch::zeros({channels_}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    std::vector<int64_t> dims, shape(x.dim(), 1);
    for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
    shape[1] = channels_;
    const auto rms = (x.pow(2).mean(dims, /*keepdim=*/true) + 1e-5).sqrt();
    return x / rms * gamma.view(shape) + beta.view(shape);
  }
  torch::Tensor gamma, beta;

 private:
  int64_t channels_;
};
TORCH_MODULE(ToyRmsNorm);

class ToyScheme : public NormScheme {
 public:
  torch::nn::AnyModule conv(const ConvSpec& s) override { return he_conv(s); }
  torch::nn::AnyModule norm(int64_t channels, const std::string&) override {
    return torch::nn::AnyModule(ToyRmsNorm(channels));
  }
};

// The one registration line.
const bool kRegistered = (registry::norms().add({"toy_rms", "test only: conv -> per-sample RMS norm", {}, [](const config::Params&) { return std::unique_ptr<NormScheme>(std::make_unique<ToyScheme>()); }}), true);

TEST(ToyScheme, IsInTheRegistryBeforeAnyTestRuns) {
  EXPECT_TRUE(kRegistered);
  EXPECT_NE(registry::norms().find("toy_rms"), nullptr);
}

TEST(ToyScheme, ItsNewLayerTypeGetsTheNormRoleByItsMark) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, "data: {name: synthetic, classes: 4, resolution: 8, train_size: 32, test_size: 8}\n"
           "model: {name: cnn9, width: 0.125}\nnorm: {name: toy_rms}\n"
           "optim: {name: sgd, lr: 0.1}\n");
  auto b = compose::build(exp, c10::Device(c10::kCPU));
  int toy = 0;
  for (const auto& p : classify_parameters(*b.model)) {
    const bool is_toy = p.name.find("gamma") != std::string::npos ||
                        p.name.find("beta") != std::string::npos;
    if (!is_toy) continue;
    ++toy;
    EXPECT_EQ(p.role, ParamRole::NormAffine) << p.name;
  }
  EXPECT_EQ(toy, 2 * 9);  // γ and β after each of cnn9's nine convs
}

}  // namespace
}  // namespace normexp::nn
