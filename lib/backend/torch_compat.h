#pragma once
// The one place where LibTorch API differences between Debian's 1.13 (CPU) and the CUDA
// builds >= 2.4 are handled. Include only from .cpp files.

#include <torch/version.h>

#include <ATen/Functions.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>

#include <mutex>

#define NORMEXP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace normexp::compat {

// A CPU generator with a fixed seed (for data that must not depend on the run's RNG).
inline at::Generator cpu_generator(std::uint64_t seed) {
  return at::detail::createCPUGenerator(seed);
}

// bf16 autocast for CUDA. 2.4 takes the device type; 1.13 had per-backend functions.
inline void set_cuda_autocast_bf16(bool enabled) {
#if NORMEXP_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
}

inline void clear_autocast_cache() { at::autocast::clear_cache(); }

// p_i -= lr * u_i for every i, lr a 0-dim tensor (a CUDA graph's device-side learning
// rate): multi-tensor kernels with LibTorch >= 2.1's _foreach_mul.Tensor; 1.13 (CPU only,
// where no graph is captured) loops over the tensors.
inline void foreach_sub_scaled_(at::TensorList ps, at::TensorList us, const at::Tensor& lr) {
#if NORMEXP_TORCH_AT_LEAST(2, 1)
  at::_foreach_sub_(ps, at::_foreach_mul(us, lr));
#else
  for (size_t i = 0; i < ps.size(); ++i) ps[i].addcmul_(us[i], lr, -1);
#endif
}

// A profiler event's duration (torch::autograd::profiler::KinetoEvent): 1.13 reports whole
// microseconds, 2.x nanoseconds.
template <class KinetoEvent>
double event_duration_us(const KinetoEvent& event) {
#if NORMEXP_TORCH_AT_LEAST(2, 0)
  return static_cast<double>(event.durationNs()) / 1e3;
#else
  return static_cast<double>(event.durationUs());
#endif
}

// State of the default CPU generator (the handle is shared, so a copy changes the default).
inline at::Tensor cpu_rng_state() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

inline void set_cpu_rng_state(const at::Tensor& state) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace normexp::compat
