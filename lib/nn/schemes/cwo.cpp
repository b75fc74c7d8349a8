// Constrained weight optimization (file 004, Ikami et al.): every conv weight row lives on
// {||w||^2 = c, 1^T w = 0}; BN is replaced by a per-channel affine with noise injection.
#include <torch/torch.h>

#include "nn/layers.h"
#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class CwoScheme : public NormScheme {
 public:
  CwoScheme(ConstraintSpec spec, bool constrain_classifier, bool per_batch, NoiseSchedule noise,
            double sigma, double residual_gamma)
      : spec_(spec),
        constrain_classifier_(constrain_classifier),
        per_batch_(per_batch),
        noise_(std::move(noise)),
        sigma_(sigma),
        residual_gamma_(residual_gamma) {}

  torch::nn::AnyModule conv(const ConvSpec& s) override {
    // The initial direction is PyTorch's default init; the constructor projects it onto the
    // constraint set, so only the direction matters.
    return torch::nn::AnyModule(ConstrainedConv2d(torch::nn::Conv2dOptions(s.in, s.out, s.kernel)
                                                      .stride(s.stride)
                                                      .padding(s.padding)
                                                      .bias(false),
                                                  spec_));
  }

  torch::nn::AnyModule norm(int64_t channels, const std::string&) override {
    return torch::nn::AnyModule(AffineNoise(channels, per_batch_));
  }

  torch::nn::AnyModule residual_norm(int64_t channels, const std::string&) override {
    AffineNoise a(channels, per_batch_);
    torch::NoGradGuard no_grad;
    a->weight.fill_(residual_gamma_);
    return torch::nn::AnyModule(a);
  }

  torch::nn::AnyModule classifier(int64_t in, int64_t out) override {
    if (!constrain_classifier_) return NormScheme::classifier(in, out);
    return torch::nn::AnyModule(ConstrainedLinear(torch::nn::LinearOptions(in, out), spec_));
  }

  void finalize(torch::nn::Module& model) override { assign_noise(model, noise_, sigma_); }

 private:
  ConstraintSpec spec_;
  bool constrain_classifier_, per_batch_;
  NoiseSchedule noise_;
  double sigma_, residual_gamma_;
};
}  // namespace

std::vector<config::OptionSpec> cwo_options() {
  using namespace config;
  return {
      opt_float("c", 2.0, "squared norm of every weight row (file 004 §3.1: c = 2)",
                greater_than(0)),
      opt_bool("center", true, "centering constraint 1^T w = 0 (Table 3 ablation)"),
      opt_bool("sphere", true, "sphere constraint ||w||^2 = c (Table 3 ablation)"),
      opt_bool("constrain_classifier", false,
               "also constrain the final linear layer (the paper does not say; off: a plain "
               "linear classifier with bias)"),
      // Choices are filled from the noise-schedule registry (lib/registry/builtin.cpp).
      opt_string("noise.schedule", "none", "noise schedule over the L noise layers"),
      opt_float("noise.sigma", 0.0, "noise std sigma (Eq. 7-8)", at_least(0)),
      opt_float("residual_gamma", 0.0,
                "initial gamma of the affine that ends each residual branch. Without "
                "normalization, gamma = 1 doubles the activation variance per block (He init "
                "on the sphere, c = 2): ~2^54 through ResNet-110. The paper does not say; 0 "
                "makes every block the identity at initialization (Goyal et al. 2017)",
                at_least(0)),
      opt_string("noise.per", "sample",
                 "one noise draw per (sample, channel), or per channel for the whole batch",
                 {"sample", "batch"}),
  };
}

std::unique_ptr<NormScheme> make_cwo(const config::Params& p, NoiseSchedule noise) {
  ConstraintSpec spec;
  spec.c = p.get_float("c");
  spec.center = p.get_bool("center");
  spec.sphere = p.get_bool("sphere");
  const double sigma = p.get_float("noise.sigma");
  if (p.get_string("noise.schedule") == "none" && sigma != 0.0)
    throw p.error("noise.sigma",
                  "is " + config::format_value(p.get("noise.sigma")) +
                      " but norm.noise.schedule is 'none'; set norm.noise.schedule to "
                      "'constant' or 'linear' (or sigma to 0)");
  return std::make_unique<CwoScheme>(spec, p.get_bool("constrain_classifier"),
                                     p.get_string("noise.per") == "batch", std::move(noise),
                                     sigma, p.get_float("residual_gamma"));
}

}  // namespace normexp::nn
