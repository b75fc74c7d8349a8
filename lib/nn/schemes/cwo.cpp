// Constrained weight optimization (Ikami et al. 2021, Ikami et al.): every conv weight row lives on
// {||w||^2 = c, 1^T w = 0}; BN is replaced by a per-channel affine with noise injection.
#include <torch/torch.h>

#include "nn/layers.h"
#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class CwoScheme : public NormScheme {
 public:
  CwoScheme(ConstraintSpec spec, bool constrain_classifier, bool per_batch, NoiseSchedule noise,
            double sigma, double residual_gamma, AffineInit init, bool fused)
      : spec_(spec),
        constrain_classifier_(constrain_classifier),
        per_batch_(per_batch),
        noise_(std::move(noise)),
        sigma_(sigma),
        residual_gamma_(residual_gamma),
        init_(init),
        fused_(fused) {}

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
    return torch::nn::AnyModule(AffineNoise(channels, per_batch_, init_, 1.0, fused_));
  }

  torch::nn::AnyModule residual_norm(int64_t channels, const std::string&) override {
    return torch::nn::AnyModule(AffineNoise(channels, per_batch_, init_, residual_gamma_, fused_));
  }

  torch::nn::AnyModule branch_scale(int64_t channels, const std::string&) override {
    return torch::nn::AnyModule(ChannelScale(channels, residual_gamma_, fused_));
  }

  torch::nn::AnyModule classifier(int64_t in, int64_t out) override {
    if (!constrain_classifier_) return NormScheme::classifier(in, out);
    return torch::nn::AnyModule(ConstrainedLinear(torch::nn::LinearOptions(in, out), spec_));
  }

  void finalize(torch::nn::Module& model) override { assign_noise(model, noise_, sigma_); }

 private:
  ConstraintSpec spec_;
  bool constrain_classifier_, per_batch_, fused_;
  NoiseSchedule noise_;
  double sigma_, residual_gamma_;
  AffineInit init_;
};
}  // namespace

std::vector<config::OptionSpec> cwo_options() {
  using namespace config;
  return {
      opt_float("c", 2.0, "squared norm of every weight row (Ikami et al. 2021 §3.1: c = 2)",
                greater_than(0)),
      opt_bool("center", true, "centering constraint 1^T w = 0 (Table 3 ablation)"),
      opt_bool("sphere", true, "sphere constraint ||w||^2 = c (Table 3 ablation)"),
      // Added after the first results: hashed only when set, so older configs keep their runs.
      hashed_unless_default(opt_string("gradient", "centered",
                 "centered: Algorithm 1 as printed (the row-centered gradient goes into the "
                 "momentum, the projection then restores the norm); tangent: also remove its "
                 "radial part first (Riemannian SGD), so no buffered step can flip a row "
                 "through the origin",
                 {"centered", "tangent"})),
      hashed_unless_default(opt_string(
          "init", "unit",
          "gamma/beta of the affine layers: unit (gamma = 1, beta = 0, as BN starts; the "
          "paper does not say) or data (from the first training batch, gamma = 1/std and "
          "beta = -mean/std per channel, so the net starts by computing what BN computes: "
          "Salimans & Kingma 2016 §3.2); a residual branch's last affine is also scaled by "
          "residual_gamma",
          {"unit", "data"})),
      hashed_unless_default(opt_bool(
          "momentum", true,
          "SGD's momentum on the constrained weights too (§4.1.1: SGD with momentum 0.9); "
          "false: Algorithm 1 as printed, a step along the centered gradient itself (gamma, "
          "beta and the classifier keep their momentum)")),
      opt_bool("constrain_classifier", false,
               "also keep the final linear layer's rows on the constraint set (its bias stays "
               "free), as Eq. 2's \"for all l\" can be read; off: a plain linear classifier. "
               "The README has what each gave on Fashion-MNIST"),
      // Choices are filled from the noise-schedule registry (lib/registry/builtin.cpp).
      opt_string("noise.schedule", "none", "noise schedule over the L noise layers"),
      opt_float("noise.sigma", 0.0, "noise std sigma (Eq. 7-8)", at_least(0)),
      opt_float("residual_gamma", 0.0,
                "initial scale at the end of each residual branch: the gamma of the affine "
                "that ends it (ResNet), or a per-channel scale after the branch's last conv "
                "(WRN's pre-activation blocks). Without normalization, 1 doubles the "
                "activation variance per block (He init on the sphere, c = 2): ~2^54 through "
                "ResNet-110. The paper does not say; 0 makes every block the identity at "
                "initialization (Goyal et al. 2017; SkipInit, De & Smith 2020) while the "
                "scale still gets a gradient",
                at_least(0)),
      opt_string("noise.per", "sample",
                 "one noise draw per (sample, channel), or per channel for the whole batch",
                 {"sample", "batch"}),
      // Added after cwo results existed: at the default, runs keep their hash.
      hashed_unless_default(opt_bool(
          "fused", true,
          "the affine + noise layers and residual branch scales on BatchNorm's inference "
          "kernels (one fused reduction for gamma's and beta's gradients); false: the "
          "broadcast op chains they are tested against (slower on the GPU; to rule the fused "
          "path in or out)")),
  };
}

std::unique_ptr<NormScheme> make_cwo(const config::Params& p, NoiseSchedule noise) {
  ConstraintSpec spec;
  spec.c = p.get_float("c");
  spec.center = p.get_bool("center");
  spec.sphere = p.get_bool("sphere");
  spec.tangent = p.get_string("gradient") == "tangent";
  spec.momentum = p.get_bool("momentum");
  const double sigma = p.get_float("noise.sigma");
  if (p.get_string("noise.schedule") == "none" && sigma != 0.0)
    throw p.error("noise.sigma",
                  "is " + config::format_value(p.get("noise.sigma")) +
                      " but norm.noise.schedule is 'none'; set norm.noise.schedule to "
                      "'constant' or 'linear' (or sigma to 0)");
  return std::make_unique<CwoScheme>(spec, p.get_bool("constrain_classifier"),
                                     p.get_string("noise.per") == "batch", std::move(noise),
                                     sigma, p.get_float("residual_gamma"),
                                     p.get_string("init") == "data" ? AffineInit::Data
                                                                    : AffineInit::Unit,
                                     p.get_bool("fused"));
}

}  // namespace normexp::nn
