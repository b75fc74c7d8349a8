#pragma once
// The CUDA half of nn/scale_channels.h: y = x * s[n, c] as one vectorized kernel
// (nn/scale_cuda.cu), compiled only when LibTorch has CUDA (NORMEXP_WITH_CUDA). No CUDA types
// and no torch/nn headers here, so plain C++ can include it and nvcc does not compile them.

#include <ATen/core/Tensor.h>

namespace normexp::nn::cuda_impl {

// Whether scale_channels_cuda takes x: a CUDA tensor of double, float, half or bfloat16,
// dense in the contiguous layout, or in channels_last if 4-d.
bool scale_channels_cuda_takes(const at::Tensor& x);

// y[n, c, ...] = x[n, c, ...] * s[n, c] (s: [N, C]) or * s[c] (s: [C]), computed in the
// accumulation type (float for half and bfloat16) and rounded once; y in x's layout.
at::Tensor scale_channels_cuda(const at::Tensor& x, const at::Tensor& s);

}  // namespace normexp::nn::cuda_impl
