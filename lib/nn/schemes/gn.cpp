// Group Normalization (Wu & He 2018): conv (no bias) -> GroupNorm over `groups` channel groups.
#include <torch/torch.h>

#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class GnScheme : public NormScheme {
 public:
  // Keeps the parsed options so a layer whose width `groups` does not divide is reported at
  // norm.groups, with the file:line the value came from.
  explicit GnScheme(config::Params p)
      : p_(std::move(p)), groups_(p_.get_int("groups")), eps_(p_.get_float("eps")) {}

  torch::nn::AnyModule conv(const ConvSpec& s) override { return he_conv(s); }

  torch::nn::AnyModule norm(int64_t channels, const std::string& where) override {
    if (channels % groups_ != 0)
      throw p_.error("groups", std::to_string(groups_) + " does not divide the " +
                                   std::to_string(channels) + " channels of " + where);
    return torch::nn::AnyModule(
        torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups_, channels).eps(eps_)));
  }

 private:
  config::Params p_;
  int64_t groups_;
  double eps_;
};
}  // namespace

std::vector<config::OptionSpec> gn_options() {
  using namespace config;
  return {
      opt_int("groups", 16, "channel groups; must divide every normalized layer's channels "
                            "(Ikami et al. 2021 §4.1.1: 16)",
              at_least(1)),
      opt_float("eps", 1e-5, "added to the variance", greater_than(0)),
  };
}

std::unique_ptr<NormScheme> make_gn(const config::Params& p) {
  return std::make_unique<GnScheme>(p);
}

}  // namespace normexp::nn
