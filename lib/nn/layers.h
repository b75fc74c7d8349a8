#pragma once
// Layers the norm schemes build from. Kept free of scheme logic: a scheme decides which of
// these it puts where.

#include <memory>

#include <torch/nn/cloneable.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "nn/affine_noise.h"

namespace normexp::backend {
class ProcessGroup;
}

namespace normexp::nn {

// The constraint set of Ikami et al. 2021, Eq. (2): for every output row w_i (one filter, n inputs),
// ||w_i||^2 = c (sphere) and 1^T w_i = 0 (centering). Either can be switched off (Table 3).
// Marks a module as a normalization layer, whatever its type: its parameters (γ, β, a scale)
// get ParamRole::NormAffine (no weight decay by default). A scheme that brings a new norm
// layer derives it from NormLayer as well as from torch::nn::Module; nothing else changes.
// (LibTorch's own BatchNorm, GroupNorm and LayerNorm cannot carry the mark; nn/params.cpp
// knows them.)
class NormLayer {
 public:
  virtual ~NormLayer() = default;
};

struct ConstraintSpec {
  double c = 2.0;  // Ikami et al. 2021 §3.1: c = 2 keeps activation variance constant under ReLU
  bool center = true;
  bool sphere = true;
  // Also remove the gradient's radial component (along w) before the momentum sees it, so
  // the step is along the sphere's tangent space (Riemannian SGD). Algorithm 1 as printed
  // keeps it and lets the projection undo it, which with momentum it cannot always do: a
  // buffered radial step longer than ||w|| = sqrt(c) flips the row through the origin.
  bool tangent = false;
  // Whether SGD's momentum applies to these weights. Algorithm 1 as printed steps along the
  // centered gradient itself; §4.1.1 trains "with SGD with a momentum of 0.9".
  bool momentum = true;
};

// Removes from every row of `g` its component along the same row of `w`, in place.
void remove_radial_rows_(const torch::Tensor& g, const torch::Tensor& w);

// Projects every output row of `weight` (dim 0 = outputs) onto the constraint set, in place:
// centers the row, then rescales it to norm sqrt(c). Works for any memory layout.
void project_rows_(const torch::Tensor& weight, const ConstraintSpec& spec);
// The starting point of a constrained layer: the rows centered if spec.center, and at norm
// sqrt(c) whether or not spec.sphere keeps them there. With the sphere constraint switched off
// (Table 3's ablation) the rows would otherwise start at PyTorch's default scale, ||w||^2 about
// 1/3 against c = 2, and the ablation would change the initial scale as well as the
// constraint; this way every variant starts from the same He-scaled weights.
void initialize_rows_(const torch::Tensor& weight, ConstraintSpec spec);
// Subtracts the per-row mean (the centered gradient of Algorithm 1), in place.
void center_rows_(const torch::Tensor& t);

// A convolution whose weight the optimizer keeps on the constraint set (projected step).
class ConstrainedConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  ConstrainedConv2dImpl(torch::nn::Conv2dOptions options, ConstraintSpec spec);
  const ConstraintSpec& constraint() const { return spec_; }

 private:
  ConstraintSpec spec_;
};
TORCH_MODULE(ConstrainedConv2d);

class ConstrainedLinearImpl : public torch::nn::LinearImpl {
 public:
  ConstrainedLinearImpl(torch::nn::LinearOptions options, ConstraintSpec spec);
  const ConstraintSpec& constraint() const { return spec_; }

 private:
  ConstraintSpec spec_;
};
TORCH_MODULE(ConstrainedLinear);

// Weight Standardization (Qiao et al. 2019; Ikami et al. 2021 Eqs. 15-17): the convolution uses, per
// output filter, w_hat = (w - mean(w)) / sqrt(var(w) + eps), mean and biased (1/n) variance
// over the filter's n = C_in*k*k entries; eps keeps a collapsed filter finite. The raw weight stays the parameter; gradients flow through the
// standardization. forward() hides Conv2dImpl::forward (AnyModule and Sequential call the
// forward of the stored type, so the hiding is what runs).
class WSConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  WSConv2dImpl(torch::nn::Conv2dOptions options, double eps);
  torch::Tensor forward(const torch::Tensor& input);
  // The standardized weight the convolution uses (differentiable w.r.t. `weight`).
  torch::Tensor standardized_weight() const;
  double eps() const { return eps_; }

 private:
  double eps_;
};
TORCH_MODULE(WSConv2d);

// Per-channel affine y = gamma*x + beta (Ikami et al. 2021, Eq. 6), with multiplicative noise in
// training: y = (1 + n)*gamma*x + beta, n ~ N(0, sigma^2) (Eq. 7). Channels are dim 1.
// One n per (sample, channel) by default — the paper does not say; per_batch draws one n per
// channel for the whole batch, as BN's batch statistics vary per batch.
//
// Computed by affine_noise_fused (nn/affine_noise.h: BatchNorm's kernels, the default) or,
// with fused = false, by the addcmul op chain it replaced.
//
// Initialization: gamma = `scale`, beta = 0 (unit: BN's init, gamma = 1), or from the data
// (Salimans & Kingma 2016 §3.2): at the first forward, gamma = scale/std and beta =
// -scale*mean/std per channel of that batch, so that the layer starts by computing what BN
// computes on it. A buffer records that it happened, so a restored checkpoint is not redone.
enum class AffineInit { Unit, Data };

class AffineNoiseImpl : public torch::nn::Cloneable<AffineNoiseImpl>, public NormLayer {
 public:
  AffineNoiseImpl(int64_t channels, bool per_batch = false, AffineInit init = AffineInit::Unit,
                  double scale = 1.0, bool fused = true);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  void set_sigma(double sigma) { sigma_ = sigma; }
  double sigma() const { return sigma_; }
  int64_t channels() const { return channels_; }
  bool fused() const { return fused_; }
  // Data init over the global batch of a data-parallel run: the statistics are all-reduced
  // over `group`, so every rank computes the init one process with the whole batch would
  // (from its own shard alone the ranks' gamma, beta would differ and stay different).
  void set_init_group(std::shared_ptr<backend::ProcessGroup> group) { group_ = std::move(group); }

  torch::Tensor weight;  // gamma
  torch::Tensor bias;    // beta

 private:
  void init_from(const torch::Tensor& x);

  int64_t channels_;
  bool per_batch_;
  AffineInit init_;
  double scale_;
  bool fused_;
  double sigma_ = 0.0;
  AffineConstants constants_;  // the fused path's BatchNorm statistics
  bool pending_ = false;     // data init not done yet in this process
  torch::Tensor initialized_;  // data init: 0-dim buffer, 1 once done (kept in checkpoints)
  std::shared_ptr<backend::ProcessGroup> group_;  // data-parallel runs: see set_init_group
};
TORCH_MODULE(AffineNoise);


// set_init_group on every AffineNoise layer of `model`.
void set_data_init_group(torch::nn::Module& model,
                         const std::shared_ptr<backend::ProcessGroup>& group);

// y = s * x with one learnable s per channel (dim 1), no bias and no noise: the scale that ends
// a residual branch in pre-activation blocks (NormScheme::branch_scale). Starting it at 0
// makes each block the identity at initialization while its gradient, dL/ds = <dL/dy, x>, is
// non-zero, so the branch starts learning at the first step (SkipInit, De & Smith 2020).
// Computed as an affine without bias by affine_noise_fused (fused, the default: BatchNorm's
// kernels, whose backward reduces dy*x per channel in one pass) or as a broadcast multiply
// under autograd.
class ChannelScaleImpl : public torch::nn::Cloneable<ChannelScaleImpl>, public NormLayer {
 public:
  ChannelScaleImpl(int64_t channels, double init, bool fused = true);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;

 private:
  int64_t channels_;
  double init_;
  bool fused_;
  AffineConstants constants_;
};
TORCH_MODULE(ChannelScale);

}  // namespace normexp::nn
