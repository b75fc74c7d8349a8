#pragma once
// 16-byte vector loads and stores for normexp's CUDA kernels (nn/bcn_cuda.cu,
// nn/scale_cuda.cu): VEC values of T moved as one aligned access. CUDA only (nvcc).

#include <cstdint>

namespace normexp::nn::cuda_impl {

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};
template <typename T, int VEC>
__device__ __forceinline__ Pack<T, VEC> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, VEC>*>(p);
}
template <typename T, int VEC>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, VEC>& v) {
  *reinterpret_cast<Pack<T, VEC>*>(p) = v;
}

// Whether p may be read or written in 16-byte packs.
inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

}  // namespace normexp::nn::cuda_impl
