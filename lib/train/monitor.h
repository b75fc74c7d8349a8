#pragma once
// Per-layer training diagnostics: what a researcher needs to see a blow-up coming and, when a
// loss goes non-finite, to know where it started.
//
// MonitoredScheme is a NormScheme decorator (LibTorch C++ has no forward hooks): every conv,
// norm and classifier it hands to the model comes back inside a Watch, a module that forwards
// to the wrapped layer and, when asked, looks at the tensor coming out and (through a tensor
// hook) at the gradient flowing back into it. Parameter names gain a ".watched" segment, which
// nn::classify_parameters strips, so optimizer state keeps its names.
//
// Two things can be switched on, both on the device without a host synchronization:
//  - sampling (train.monitor_every = N: every N-th step): per layer, the RMS and largest |value|
//    of the output, the RMS of the gradient into it, and of the layer's weight and bias (gamma,
//    beta for norm layers) their RMS, largest |value| and gradient RMS; for conv and linear
//    weights also the share of each row's squared norm along the all-ones direction,
//    (1ᵀw)²/(n‖w‖²), averaged over rows: 0 for centered rows (cwo), about 1/n for random
//    ones, 1 for a row that only sums its input, the alignment with the inputs' mean that
//    Ikami et al. 2021 §3.2 centers against. Rows are read back at the end of an epoch (or at
//    a divergence).
//  - finiteness checks (every step while on): the first step at which each layer's output and
//    output gradient was non-finite. With train.monitor_every > 0 they run at every step, so a
//    divergence names the layer at the step it happened; otherwise the trainer runs them in a
//    post-mortem pass on the diverging batch.
// Off, a Watch is one extra call per layer.

#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include "nn/norm_scheme.h"
#include "train/step.h"

namespace normexp::train {

// Per-layer numbers of one sampled step, in this order (NaN where a layer has no such tensor).
inline constexpr const char* kLayerStatNames[] = {
    "out_rms", "out_absmax", "out_grad_rms", "weight_rms", "weight_absmax",
    "weight_grad_rms", "bias_rms", "bias_absmax", "bias_grad_rms", "weight_mean_share"};
inline constexpr int64_t kLayerStats = static_cast<int64_t>(std::size(kLayerStatNames));

class WatchImpl : public torch::nn::Module {
 public:
  // `kind`: "conv", "norm" or "classifier"; `where`: the layer's name in reports.
  WatchImpl(std::string where, std::string kind, torch::nn::AnyModule inner);
  torch::Tensor forward(torch::Tensor x);

  const std::string& where() const { return where_; }
  const std::string& kind() const { return kind_; }
  torch::nn::Module& inner() const { return *inner_.ptr(); }

  // step: a 0-dim int64 device tensor holding the current step (shared by all watches).
  void set_step_counter(at::Tensor step) { step_ = std::move(step); }
  void set_sampling(bool on) { sampling_ = on; }
  void set_checking(bool on) { checking_ = on; }
  // The kLayerStats numbers of the last sampled forward/backward (float32, device).
  at::Tensor stats() const;
  // First step with a non-finite output / output gradient (-1: none yet), device scalars.
  const at::Tensor& first_bad_output() const { return bad_out_; }
  const at::Tensor& first_bad_gradient() const { return bad_grad_; }
  void reset_checks();

 private:
  std::string where_, kind_;
  torch::nn::AnyModule inner_;
  bool sampling_ = false, checking_ = false;
  at::Tensor step_, out_rms_, out_absmax_, grad_rms_, bad_out_, bad_grad_;
};
TORCH_MODULE(Watch);

class MonitoredScheme : public nn::ForwardingScheme {
 public:
  explicit MonitoredScheme(std::unique_ptr<nn::NormScheme> inner);
  torch::nn::AnyModule conv(const nn::ConvSpec& spec) override;
  torch::nn::AnyModule norm(int64_t channels, const std::string& where) override;
  torch::nn::AnyModule residual_norm(int64_t channels, const std::string& where) override;
  torch::nn::AnyModule branch_scale(int64_t channels, const std::string& where) override;
  torch::nn::AnyModule token_norm(int64_t dim, const std::string& where) override;
  torch::nn::AnyModule classifier(int64_t in, int64_t out) override;

  // In build order (= forward order for the registered models).
  const std::vector<Watch>& watches() const { return watches_; }

 private:
  torch::nn::AnyModule watch(std::string where, std::string kind, torch::nn::AnyModule inner);
  std::vector<Watch> watches_;
  int64_t convs_ = 0;
};

class LayerMonitor : public StepObserver {
 public:
  // `every`: sample every N-th step (0: never; finiteness checks then only in post_mortem).
  LayerMonitor(std::vector<Watch> watches, int64_t every, const c10::Device& device);

  int64_t every() const { return every_; }
  bool empty() const { return watches_.empty(); }
  // Before the forward of global step `step` (1-based).
  void before_step(int64_t step) override;
  // After the optimizer step: on a sampled step, keeps the layers' stats, the logits' RMS and
  // the loss (device tensors; nothing is read back yet).
  void after_step(const at::Tensor& logits, const at::Tensor& loss) override;
  // The sampled rows since the last call, read back to the host (one synchronization):
  // {"step", "loss", "logit_rms", "layers": [{"layer", "kind", <kLayerStatNames>...}]}.
  std::vector<nlohmann::json> take_rows();
  // Layer names where the output / the gradient into the output was first non-finite, with
  // the step: {"output": {"layer", "kind", "step"}, "gradient": {...}}; a key is absent when
  // every checked value was finite.
  nlohmann::json first_nonfinite() const;
  // Checks on for one forward/backward run by `pass` (the caller's post-mortem on the batch
  // at hand), then restores the previous state.
  template <class F>
  void checked_pass(int64_t step, F&& pass) {
    set_checking(true);
    before_step(step);
    pass();
    set_checking(every_ > 0);
  }

 private:
  void set_checking(bool on);

  std::vector<Watch> watches_;
  int64_t every_;
  bool sampling_ = false;
  at::Tensor step_;
  struct Pending {
    int64_t step;
    at::Tensor stats, loss, logit_rms;
  };
  std::vector<Pending> pending_;
  int64_t step_host_ = 0;
};

}  // namespace normexp::train
