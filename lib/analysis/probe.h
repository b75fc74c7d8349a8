#pragma once
// Watching a registered model from the inside without forward hooks (LibTorch C++ has none).
//
// ProbedScheme is a NormScheme decorator: it builds whatever the wrapped scheme builds, but
// every conv and every norm layer comes back inside a Probe, a module that forwards to the
// wrapped layer and looks at the tensor going in. A conv probe remembers the input shape (so
// that the conv's operator norm is computed on its real input, Than 2025's Lipschitz bound);
// a norm probe, while recording, accumulates the per-channel standard deviation of its input
// — the σ_k that Than 2025 Corollary 10 divides the Lipschitz constant by. Because the probe
// sits where the scheme puts its norm layer, it measures σ_k for `none` too (there the norm
// layer is an Identity): the unnormalized network's σ at the places a norm would be.
// Models stay unchanged; parameter names gain an ".inner" (conv1.inner.weight).
//
// σ_k of one layer is the std over (batch, height, width) per channel — the statistic BN
// divides by — averaged over the recorded batches; a layer's scalar σ_k is the mean over
// channels ("typical" factor) and its min over channels gives ‖1/σ_k‖_∞, the BN layer's
// Lipschitz constant in Than 2025 §4.2. Products are kept as log10 sums (1e-25 and 1e50
// do not fit a float's exponent comfortably and must not overflow when multiplied).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include "nn/norm_scheme.h"

namespace normexp::analysis {

// Norm: channels on dim 1 (conv features); TokenNorm: channels last ((N, T, dim) tokens).
enum class ProbeKind { Conv, Norm, TokenNorm };

class ProbeImpl : public torch::nn::Module {
 public:
  ProbeImpl(ProbeKind kind, std::string where, torch::nn::AnyModule inner);
  torch::Tensor forward(torch::Tensor x);

  ProbeKind kind() const { return kind_; }
  const std::string& where() const { return where_; }
  const torch::nn::AnyModule& inner() const { return inner_; }
  // (C, H, W) of the last input (empty before the first forward).
  const std::vector<int64_t>& input_chw() const { return chw_; }
  // Conv probes: the spec the scheme was asked for (stride, padding of the operator).
  nn::ConvSpec conv_spec;

  // Norm probes: accumulate per-channel input std of every forward while recording.
  void set_recording(bool on) { recording_ = on; }
  void clear();
  int64_t batches() const { return batches_; }
  // Mean over the recorded batches, per channel (double, CPU); undefined when none.
  torch::Tensor sigma() const;

 private:
  ProbeKind kind_;
  std::string where_;
  torch::nn::AnyModule inner_;
  std::vector<int64_t> chw_;
  bool recording_ = false;
  torch::Tensor sigma_sum_;  // on the input's device, no host sync per step
  int64_t batches_ = 0;
};
TORCH_MODULE(Probe);

class ProbedScheme : public nn::ForwardingScheme {
 public:
  explicit ProbedScheme(std::unique_ptr<nn::NormScheme> inner);

  torch::nn::AnyModule conv(const nn::ConvSpec& spec) override;
  torch::nn::AnyModule norm(int64_t channels, const std::string& where) override;
  torch::nn::AnyModule residual_norm(int64_t channels, const std::string& where) override;
  torch::nn::AnyModule token_norm(int64_t dim, const std::string& where) override;
  torch::nn::AnyModule classifier(int64_t in, int64_t out) override;

  // In build order (= forward order for our models).
  const std::vector<Probe>& conv_probes() const { return convs_; }
  const std::vector<Probe>& norm_probes() const { return norms_; }
  const std::shared_ptr<torch::nn::Module>& classifier_module() const { return classifier_; }
  void set_recording(bool on);
  void clear();

 private:
  std::vector<Probe> convs_, norms_;
  std::shared_ptr<torch::nn::Module> classifier_;
  int64_t conv_count_ = 0;
};

// The operator norm and Frobenius norm of every weight layer of a probed model: convs on
// their last input shape (run a forward first), the classifier as a matrix. Weight-
// standardized convs use the standardized weight (what the forward uses).
struct LayerWeightNorm {
  std::string where;
  double spectral = 0, frobenius = 0;
};
std::vector<LayerWeightNorm> layer_norms(const ProbedScheme& scheme, int64_t iters = 50);

// Summary over norm probes: per layer mean-over-channels σ_k and min-over-channels σ_k, and
// the log10 products log10 ∏ 1/mean σ_k and log10 ∏ max_c 1/σ_{k,c}.
struct SigmaSummary {
  std::vector<std::string> where;
  std::vector<double> sigma_mean, sigma_min;
  double log10_inv_sigma_prod = 0, log10_inv_sigma_min_prod = 0;
};
SigmaSummary sigma_summary(const ProbedScheme& scheme);

}  // namespace normexp::analysis
