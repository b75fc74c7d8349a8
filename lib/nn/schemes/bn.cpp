#include <torch/torch.h>

#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class BnScheme : public NormScheme {
 public:
  BnScheme(double momentum, double eps) : momentum_(momentum), eps_(eps) {}

  torch::nn::AnyModule conv(const ConvSpec& s) override { return he_conv(s); }

  torch::nn::AnyModule norm(int64_t channels, const std::string&) override {
    return torch::nn::AnyModule(torch::nn::BatchNorm2d(
        torch::nn::BatchNorm2dOptions(channels).momentum(momentum_).eps(eps_)));
  }

 private:
  double momentum_, eps_;
};
}  // namespace

std::vector<config::OptionSpec> bn_options() {
  using namespace config;
  return {
      opt_float("momentum", 0.1, "running-statistics momentum (PyTorch convention)",
                between(0, 1, true, false)),
      opt_float("eps", 1e-5, "added to the variance", greater_than(0)),
  };
}

std::unique_ptr<NormScheme> make_bn(const config::Params& p) {
  return std::make_unique<BnScheme>(p.get_float("momentum"), p.get_float("eps"));
}

}  // namespace normexp::nn
