// No normalization: the "plain" network of Ikami et al. 2021 Table 6 (BN layers removed).
#include <torch/torch.h>

#include "nn/layers.h"
#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class NoneScheme : public NormScheme {
 public:
  NoneScheme(bool he_init, bool skip_init) : he_init_(he_init), skip_init_(skip_init) {}

  torch::nn::AnyModule conv(const ConvSpec& s) override {
    // With bias: nothing after the conv supplies one. By default PyTorch's init (uniform,
    // variance 1/(3 fan_in)) rather than He's: without normalization, He init roughly doubles
    // the activation variance at every residual block (Zhang et al. 2019, Fixup), i.e. by
    // ~2^54 over ResNet-110; the default init keeps each residual branch small, but it also
    // shrinks the signal at every layer (x0.4 in RMS per conv-ReLU), so deep plain nets
    // start with vanishing activations. conv_init: he + skip_init avoids both.
    torch::nn::Conv2d conv(conv_options(s, /*bias=*/true));
    if (he_init_) {
      // fan_in (He et al. 2015's forward case): keeps the second moment of the activations
      // through conv-ReLU, which without a norm nothing else restores. (The BN schemes use
      // fan_out, torchvision's choice: there the norm sets the forward scale anyway.)
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanIn, torch::kReLU);
      torch::NoGradGuard no_grad;
      conv->bias.zero_();
    }
    return torch::nn::AnyModule(conv);
  }

  torch::nn::AnyModule norm(int64_t, const std::string&) override {
    return torch::nn::AnyModule(torch::nn::Identity());
  }

  // SkipInit (De & Smith 2020): a learnable scale, starting at 0, ends every residual branch,
  // so each block is the identity at initialization and the depth cannot blow the signal up.
  // It sits after the branch's last conv, not inside the branch, so the branch still gets
  // gradient once the scale has moved (and the scale gets one from the start).
  torch::nn::AnyModule residual_norm(int64_t channels, const std::string& where) override {
    if (!skip_init_) return norm(channels, where);
    return torch::nn::AnyModule(ChannelScale(channels, 0.0));
  }

  torch::nn::AnyModule branch_scale(int64_t channels, const std::string& where) override {
    if (!skip_init_) return NormScheme::branch_scale(channels, where);
    return torch::nn::AnyModule(ChannelScale(channels, 0.0));
  }

  torch::nn::AnyModule token_norm(int64_t, const std::string&) override {
    return torch::nn::AnyModule(torch::nn::Identity());
  }

 private:
  bool he_init_, skip_init_;
};
}  // namespace

std::vector<config::OptionSpec> none_options() {
  using namespace config;
  // Both added after the first results: hashed only when set, so older configs keep their runs.
  return {
      hashed_unless_default(opt_string(
          "conv_init", "default",
          "initial conv/linear weights: default (PyTorch's, variance 1/(3 fan_in): the signal "
          "shrinks at every layer) or he (He et al. 2015 normal, fan_in, biases 0: keeps the "
          "activations' scale through depth, which nothing else restores without a norm)",
          {"default", "he"})),
      hashed_unless_default(opt_bool(
          "skip_init", false,
          "end every residual branch with a learnable per-channel scale that starts at 0 "
          "(SkipInit, De & Smith 2020), so each block starts as the identity: with "
          "conv_init: he this is how unnormalized ResNets train. No effect on nets without "
          "residual branches")),
  };
}

std::unique_ptr<NormScheme> make_none(const config::Params& p) {
  return std::make_unique<NoneScheme>(p.get_string("conv_init") == "he", p.get_bool("skip_init"));
}

}  // namespace normexp::nn
