#pragma once
// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) of a training batch with its own
// reversal, as DeiT trains ViTs (Touvron et al. 2021: mixup α 0.8, CutMix α 1.0, one or the
// other per batch with probability 1/2). Batched on the device with one λ per batch, drawn
// from the device's generator: no host read, so the step stays capturable in a CUDA graph.
// The loss is then λ·CE(y) + (1 − λ)·CE(y reversed) (train/step.h).

#include <ATen/core/Tensor.h>

namespace normexp::data {

struct MixOptions {
  double mixup_alpha = 0;   // Beta(α, α) for mixup's λ; 0: no mixup
  double cutmix_alpha = 0;  // Beta(α, α) for CutMix's box; 0: no CutMix
  double switch_prob = 0.5; // with both on: the probability that a batch uses CutMix
  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

struct MixedBatch {
  at::Tensor x;
  // Float scalar on the device: the weight of each sample's own label; 1 − lam goes to the
  // label of the sample it was mixed with, labels.flip(0). For CutMix, the exact share of
  // pixels left from the sample's own image (the box clipped to the image).
  at::Tensor lam;
};

// `n` draws of Beta(α, α) as G₁/(G₁ + G₂), Gᵢ ~ Gamma(α, 1), on the device of `like`.
at::Tensor sample_beta(double alpha, int64_t n, const at::TensorOptions& like);

// x (N, C, H, W) float, mixed with x.flip(0).
MixedBatch mix_batch(const at::Tensor& x, const MixOptions& options);

}  // namespace normexp::data
