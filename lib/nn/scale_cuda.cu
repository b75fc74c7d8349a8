// y = x * s[n, c] on CUDA (nn/scale_cuda.h). As a LibTorch broadcast multiply this is the
// generic strided elementwise kernel: s has stride 0 along H, W, and TensorIterator only
// vectorizes when every operand is contiguous, so each thread moves one value at a time. In
// cwo's WideResNet on the H200 those multiplies (per-sample noise forward and backward, the
// branch scale's dL/dx) were 74 kernels and 2.4 ms of a 17.7 ms step (README, "Measured on
// the H200"). Here each thread moves 16 bytes: a pack of values that share their sample and
// either their channel (contiguous layout, H*W a multiple of the pack) or consecutive
// channels (channels_last, C a multiple of the pack); other shapes take packs of one.
#include "nn/scale_cuda.h"
#include "nn/cuda_pack.cuh"

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>

namespace normexp::nn::cuda_impl {

namespace {

constexpr int kThreads = 256;

// Packs of VEC values; pack p starts at value p * VEC. s: [s_rows, C] in A (s_rows 1 or N).
template <typename T, typename A, int VEC, bool kChannelsLast>
__global__ void scale_channels_kernel(const T* __restrict__ x, const A* __restrict__ s,
                                      T* __restrict__ y, int64_t packs, int64_t C, int64_t HW,
                                      bool per_sample) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < packs;
       p += stride) {
    const int64_t i = p * VEC;
    const int64_t n = i / (C * HW);
    const int64_t c = kChannelsLast ? i % C : (i / HW) % C;
    const A* row = s + (per_sample ? n * C : 0);
    const auto in = load_pack<T, VEC>(x + i);
    Pack<T, VEC> out;
#pragma unroll
    for (int k = 0; k < VEC; ++k)
      out.v[k] = static_cast<T>(static_cast<A>(in.v[k]) * row[kChannelsLast ? c + k : c]);
    store_pack<T, VEC>(y + i, out);
  }
}

bool channels_last_only(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

template <typename T, typename A, int VEC, bool kChannelsLast>
void launch(const at::Tensor& x, const at::Tensor& s, at::Tensor& y, int64_t C, int64_t HW) {
  const int64_t packs = x.numel() / VEC;
  const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int64_t blocks =
      std::max<int64_t>(1, std::min((packs + kThreads - 1) / kThreads, 32 * sms));
  scale_channels_kernel<T, A, VEC, kChannelsLast>
      <<<static_cast<unsigned>(blocks), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
          x.data_ptr<T>(), s.data_ptr<A>(), y.data_ptr<T>(), packs, C, HW, s.dim() == 2);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

bool scale_channels_cuda_takes(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return x.is_cuda() && x.dim() >= 2 &&
         (t == at::kDouble || t == at::kFloat || t == at::kHalf || t == at::kBFloat16) &&
         (x.is_contiguous() || channels_last_only(x));
}

at::Tensor scale_channels_cuda(const at::Tensor& x, const at::Tensor& s) {
  TORCH_CHECK(scale_channels_cuda_takes(x), "scale_channels_cuda: unsupported input");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t C = x.size(1), HW = x.numel() / std::max<int64_t>(1, x.size(0) * C);
  const bool channels_last = channels_last_only(x);
  auto y = at::empty_like(x, channels_last ? at::MemoryFormat::ChannelsLast
                                           : at::MemoryFormat::Contiguous);
  if (x.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "scale_channels",
                                  [&] {
    using A = at::acc_type<scalar_t, /*is_cuda=*/true>;
    constexpr int kVec = 16 / sizeof(scalar_t);
    const auto sa = s.to(x.device(), c10::CppTypeToScalarType<A>::value).contiguous();
    const bool aligned = aligned16(x.data_ptr());
    const bool packs_fit = channels_last ? C % kVec == 0 : HW % kVec == 0;
    if (aligned && packs_fit) {
      if (channels_last)
        launch<scalar_t, A, kVec, true>(x, sa, y, C, HW);
      else
        launch<scalar_t, A, kVec, false>(x, sa, y, C, HW);
    } else if (channels_last) {
      launch<scalar_t, A, 1, true>(x, sa, y, C, HW);
    } else {
      launch<scalar_t, A, 1, false>(x, sa, y, C, HW);
    }
  });
  return y;
}

}  // namespace normexp::nn::cuda_impl
