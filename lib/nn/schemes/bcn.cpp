// Band-Constrained Normalization (Markou) as a scheme: conv (no bias) -> BCN, and BCN
// wherever a transformer has LayerNorm. ln, its LayerNorm baseline, lives here too.
#include <torch/torch.h>

#include "nn/bcn.h"
#include "nn/schemes/schemes.h"

namespace normexp::nn {

namespace {
class BcnScheme : public NormScheme {
 public:
  explicit BcnScheme(const config::Params& p) {
    o_.alpha = p.get_float("alpha");
    o_.eps = p.get_float("eps");
    o_.stats = parse_bcn_stats(p.get_string("stats"));
    o_.bound = parse_bcn_bound(p.get_string("bound"));
    o_.scale_by_sqrt_dim = p.get_bool("scale_by_sqrt_dim");
    o_.affine = p.get_bool("affine");
    o_.momentum = p.get_float("momentum");
    o_.fused = p.get_bool("fused");
    o_.vector = parse_bcn_vector(p.get_string("vector"));
    if (o_.vector == BcnVector::Sample && o_.stats == BcnStats::Tokens)
      throw p.error("vector", "sample leaves one magnitude per sample, so statistics over a "
                              "sample's magnitudes have no spread: set norm.stats: batch "
                              "(or none, literal)");
  }

  torch::nn::AnyModule conv(const ConvSpec& s) override { return he_conv(s); }

  torch::nn::AnyModule norm(int64_t channels, const std::string&) override {
    auto o = o_;
    o.features = channels;
    o.layout = BcnLayout::Channels;
    return torch::nn::AnyModule(Bcn(o));
  }

  torch::nn::AnyModule token_norm(int64_t dim, const std::string&) override {
    auto o = o_;
    o.features = dim;
    o.layout = BcnLayout::Tokens;
    o.vector = BcnVector::Position;  // a token is the vector; `vector` is about conv maps
    return torch::nn::AnyModule(Bcn(o));
  }

 private:
  BcnOptions o_;
};

class LnScheme : public NormScheme {
 public:
  explicit LnScheme(const config::Params& p) : eps_(p.get_float("eps")) {}

  torch::nn::AnyModule conv(const ConvSpec& s) override { return he_conv(s); }

  torch::nn::AnyModule norm(int64_t channels, const std::string&) override {
    return torch::nn::AnyModule(
        torch::nn::GroupNorm(torch::nn::GroupNormOptions(1, channels).eps(eps_)));
  }

  torch::nn::AnyModule token_norm(int64_t dim, const std::string&) override {
    return torch::nn::AnyModule(
        torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps_)));
  }

 private:
  double eps_;
};
}  // namespace

std::vector<config::OptionSpec> bcn_options() {
  using namespace config;
  return {
      opt_float("alpha", 0.2, "band thickness: ||y|| in [1 - alpha, 1] (Markou §5.1: 0.2)",
                between(0, 1, true, true)),
      opt_float("eps", 1e-5, "epsilon of the magnitude LayerNorm (Markou §3.4)",
                greater_than(0)),
      opt_string("stats", "tokens",
                 "magnitude LayerNorm statistics over: tokens (one sample's tokens/positions), "
                 "batch (all, running stats for eval), literal (the paper's LayerNorm(1): "
                 "degenerate, m~ = beta), none (ablation: no magnitude LayerNorm)",
                 {"tokens", "batch", "literal", "none"}),
      opt_string("bound", "tanh", "tanh (Markou) or clip (ablation §5.4: hard clipping)",
                 {"tanh", "clip"}),
      opt_bool("scale_by_sqrt_dim", true,
               "multiply by sqrt(d) so entries have LayerNorm-like RMS in [1 - alpha, 1]"),
      opt_bool("affine", true, "per-feature gamma, beta after the band map (as LN/BN have)"),
      opt_float("momentum", 0.1, "running magnitude statistics (stats: batch)",
                between(0, 1, false, true)),
      // Added after BCN results existed: at the default, runs keep their hash.
      hashed_unless_default(opt_bool(
          "fused", true,
          "one autograd function with the closed-form backward of Markou §4.1; false: the "
          "chain of LibTorch ops it is tested against (slower; to rule the fused path in or "
          "out when a BCN run misbehaves)")),
      hashed_unless_default(opt_string(
          "vector", "position",
          "on conv maps, the vector BCN normalizes: position (the C-vector at each position) "
          "or sample (a sample's whole C*H*W map, as LayerNorm's axes; needs stats batch, none "
          "or literal: tokens would see one magnitude). "
          "Tokens are always the vector in transformers",
          {"position", "sample"})),
  };
}

std::unique_ptr<NormScheme> make_bcn(const config::Params& p) {
  return std::make_unique<BcnScheme>(p);
}

std::vector<config::OptionSpec> ln_options() {
  using namespace config;
  return {opt_float("eps", 1e-5, "added to the variance", greater_than(0))};
}

std::unique_ptr<NormScheme> make_ln(const config::Params& p) {
  return std::make_unique<LnScheme>(p);
}

}  // namespace normexp::nn
