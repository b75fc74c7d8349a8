#pragma once
// BCN (Markou, §3.2) as one autograd function: the forward in two passes over the tensor (one
// reduction for ||x||, one pass writing y) and the backward as §4.1's closed form, also in two
// passes (one reduction for each vector's dot products, one pass writing dL/dx), instead of the
// op chain's dozen kernels and saved intermediates. Same numerics as BcnImpl's op chain
// (bcn.h): robust ||x|| without overflow or underflow, zero vectors to the uniform direction
// with zero gradient.
//
// Folded into the same passes: the sqrt(d) scale and the per-feature affine (per channel for
// whole-map vectors: config.affine_run entries share a weight), so the forward keeps only x
// (which autograd holds anyway), four scalars per vector (m, s, the normalized magnitude,
// ds/dm~) and one per magnitude group — not the normalized tensor.
//
// The backward, per vector with u = x/m, h = dL/dy * w (the affine's weight), c the sqrt(d)
// scale and p = dL/dm (the magnitude LayerNorm's own backward applied to
// q = dL/dm~ = c (h.u) ds/dm~, ds/dm~ = alpha/2 sech^2(m~) or alpha/2 [|m~| <= 1] for clip):
//   dL/dx = c s (I - u u^T) h / m + p u.
// On CPU: float and double, loops over the data (BcnImpl casts half types to float first). On
// CUDA (builds with NORMEXP_WITH_CUDA): float, double, half and bfloat16, the same passes as
// kernels (nn/bcn_cuda.cu), with no host synchronization, so a training step that contains
// it can be captured in a CUDA graph. Its backward is not itself differentiable: a
// create_graph backward through it is an error.

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "nn/bcn.h"

namespace normexp::nn {

struct BcnFunctionConfig {
  BcnLayout layout = BcnLayout::Tokens;
  BcnStats stats = BcnStats::Tokens;
  BcnBound bound = BcnBound::Tanh;
  double alpha = 0.2;
  double eps = 1e-5;
  double scale = 1.0;     // sqrt(d) when scale_by_sqrt_dim, else 1 (the band map alone)
  bool training = true;   // stats: batch uses running estimates when false
  // Consecutive entries of a vector that share one affine weight: 1, or H*W when a vector is
  // a sample's whole (C, H, W) map in the Tokens layout (weight and bias then have C entries).
  int64_t affine_run = 1;
};

struct BcnFunctionResult {
  torch::Tensor y;           // differentiable output, x's shape and dtype
  torch::Tensor scale;       // s per vector, (N, P) in x's dtype (detached)
  torch::Tensor batch_mean;  // stats: batch in training: the batch's magnitude mean (0-dim,
  torch::Tensor batch_var;   // double, detached) and biased variance; otherwise undefined
};

// Whether bcn_fused runs on tensors of this device: CPU, and CUDA when built with it.
bool bcn_fused_supports(const c10::Device& device);

// Whether the CPU loops split their work over LibTorch's threads: at::parallel_for is inline
// and runs serially unless its caller is compiled with OpenMP (lib/CMakeLists.txt); false
// in a build without it, where every BCN layer runs on one thread.
bool bcn_fused_cpu_parallel();

// x: float or double CPU tensor, or a float, double, half or bfloat16 CUDA tensor; (N, ..., D)
// for the Tokens layout or (N, C, ...) for Channels. weight, bias: (D / config.affine_run), or
// both undefined (no affine); computed in x's dtype, on CUDA in float for half types.
// mag_weight, mag_bias: LayerNorm(1)'s scalars (unused for stats: none). running_mean,
// running_var: used only for stats: batch with training == false. On CUDA every tensor is on
// x's device.
BcnFunctionResult bcn_fused(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias, const torch::Tensor& mag_weight,
                            const torch::Tensor& mag_bias, const torch::Tensor& running_mean,
                            const torch::Tensor& running_var, const BcnFunctionConfig& config);

}  // namespace normexp::nn
