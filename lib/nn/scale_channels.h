#pragma once
// y = x * s per channel (dim 1 of x), s: [C], or [N, C] (per sample and channel). On CUDA one
// vectorized kernel (nn/scale_cuda.cu) for contiguous and channels_last inputs, computed in
// float and rounded once; elsewhere LibTorch's broadcast multiply by s in x's dtype. Not
// differentiable: for autograd functions' own forward and backward passes (nn/affine_noise).

#include <ATen/core/Tensor.h>

namespace normexp::nn {

torch::Tensor scale_channels(const torch::Tensor& x, const torch::Tensor& s);

}  // namespace normexp::nn
