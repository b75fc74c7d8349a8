// No normalization: the "plain" network of Ikami et al. 2021 Table 6 (BN layers removed).
#include <torch/torch.h>

#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class NoneScheme : public NormScheme {
 public:
  torch::nn::AnyModule conv(const ConvSpec& s) override {
    // With bias: nothing after the conv supplies one. PyTorch's default init (uniform,
    // variance 1/(3 fan_in)) rather than He's: without normalization, He init roughly doubles
    // the activation variance at every residual block (Zhang et al. 2019, Fixup), i.e. by
    // ~2^54 over ResNet-110; the default init keeps each residual branch small.
    return torch::nn::AnyModule(torch::nn::Conv2d(conv_options(s, /*bias=*/true)));
  }

  torch::nn::AnyModule norm(int64_t, const std::string&) override {
    return torch::nn::AnyModule(torch::nn::Identity());
  }

  torch::nn::AnyModule token_norm(int64_t, const std::string&) override {
    return torch::nn::AnyModule(torch::nn::Identity());
  }
};
}  // namespace

std::vector<config::OptionSpec> none_options() { return {}; }

std::unique_ptr<NormScheme> make_none(const config::Params&) {
  return std::make_unique<NoneScheme>();
}

}  // namespace normexp::nn
