#pragma once
// The computation of cwo's affine + noise layer (Ikami et al. 2021, Eq. 7), y = f*gamma*x +
// beta per channel (dim 1 of x), f = 1 + n the noise factor: undefined (no noise), [C] (one per
// channel) or [N, C] (one per sample and channel). Two implementations of the same math:
//
// affine_noise_fused: one autograd function on BatchNorm's kernels. The forward is
// BatchNorm's inference transform (mean 0, variance 1, eps 0: (x - 0) * 1 * gamma + beta);
// per-sample noise first scales x, which the function keeps instead of x. The backward gets
// gamma's and beta's gradients from BatchNorm's backward reduction alone (one fused pass over
// dy and x, with a channels_last kernel on CUDA) and dL/dx = dy*f*gamma as one broadcast
// multiply, which keeps dy's memory layout. (BatchNorm's own eval-mode backward would write
// dL/dx in the contiguous layout whatever dy's, a transposing copy per layer for channels_last
// nets: that is why this is a function of its own and not torch::batch_norm under autograd.)
// zero_mean and unit_var: [C] zeros and ones in weight's dtype, on its device.
//
// affine_noise_op_chain: an addcmul under autograd, which reduces dy*x and dy in separate
// broadcast reductions: 2.3x BatchNorm's GPU time on the H200 (README). The reference the
// fused function is tested and benchmarked against (norm.fused: false).

#include <ATen/core/Tensor.h>

namespace normexp::nn {

torch::Tensor affine_noise_fused(const torch::Tensor& x, const torch::Tensor& weight,
                                 const torch::Tensor& bias, const torch::Tensor& factor,
                                 const torch::Tensor& zero_mean, const torch::Tensor& unit_var);

// [C] zeros and ones in the dtype and on the device of `like` (a layer's weight): the
// running mean and variance affine_noise_fused hands BatchNorm. Made at the first call there
// and kept; not a module's buffers, so checkpoints stay as they were.
class AffineConstants {
 public:
  const torch::Tensor& zeros(const torch::Tensor& like);
  const torch::Tensor& ones(const torch::Tensor& like);

 private:
  torch::Tensor zeros_, ones_;
};

torch::Tensor affine_noise_op_chain(const torch::Tensor& x, const torch::Tensor& weight,
                                    const torch::Tensor& bias, const torch::Tensor& factor);

}  // namespace normexp::nn
