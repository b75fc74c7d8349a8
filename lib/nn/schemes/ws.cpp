// Weight Standardization (Qiao et al. 2019): a weight-standardized conv followed by BN (ws_bn)
// or GN (ws_gn). Both are "WS + an activation norm", so one scheme wraps the bn or gn scheme
// and replaces only its conv.
#include <torch/torch.h>

#include "nn/layers.h"
#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class WsScheme : public NormScheme {
 public:
  WsScheme(std::unique_ptr<NormScheme> activation_norm, double ws_eps)
      : activation_norm_(std::move(activation_norm)), ws_eps_(ws_eps) {}

  torch::nn::AnyModule conv(const ConvSpec& s) override {
    WSConv2d conv(conv_options(s, /*bias=*/false), ws_eps_);
    // Only the direction of the raw weight matters after standardization; the same He init as
    // bn keeps the raw weights at a familiar scale for weight decay.
    kaiming_fan_out_(conv->weight);
    return torch::nn::AnyModule(conv);
  }

  torch::nn::AnyModule norm(int64_t channels, const std::string& where) override {
    return activation_norm_->norm(channels, where);
  }

 private:
  std::unique_ptr<NormScheme> activation_norm_;
  double ws_eps_;
};

config::OptionSpec ws_eps_option() {
  return config::opt_float("ws_eps", 1e-5,
                           "added to each filter's weight variance before standardizing",
                           config::greater_than(0));
}
}  // namespace

std::vector<config::OptionSpec> ws_bn_options() {
  auto specs = bn_options();
  specs.push_back(ws_eps_option());
  return specs;
}

std::unique_ptr<NormScheme> make_ws_bn(const config::Params& p) {
  return std::make_unique<WsScheme>(make_bn(p), p.get_float("ws_eps"));
}

std::vector<config::OptionSpec> ws_gn_options() {
  auto specs = gn_options();
  specs.push_back(ws_eps_option());
  return specs;
}

std::unique_ptr<NormScheme> make_ws_gn(const config::Params& p) {
  return std::make_unique<WsScheme>(make_gn(p), p.get_float("ws_eps"));
}

}  // namespace normexp::nn
