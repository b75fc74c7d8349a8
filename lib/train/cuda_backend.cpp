#include "train/cuda_backend.h"

#include <torch/torch.h>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include <mutex>

#include "core/torch_compat.h"

namespace normexp::cuda {

bool compiled_with_cuda() { return true; }

std::string device_name() {
  const auto* props = at::cuda::getCurrentDeviceProperties();
  return props ? std::string(props->name) : std::string("cuda");
}

void synchronize() { torch::cuda::synchronize(); }

void set_bf16_autocast(bool enabled) { compat::set_cuda_autocast_bf16(enabled); }

void clear_autocast_cache() { compat::clear_autocast_cache(); }

void set_cudnn_benchmark(bool enabled) { at::globalContext().setBenchmarkCuDNN(enabled); }

at::Tensor rng_state() {
  if (!torch::cuda::is_available()) return {};
  auto gen = at::cuda::detail::getDefaultCUDAGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const at::Tensor& state) {
  if (!state.defined() || !torch::cuda::is_available()) return;
  auto gen = at::cuda::detail::getDefaultCUDAGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

namespace {
// allocated_bytes[StatType::AGGREGATE]: index 0. DeviceStats and StatType moved from
// c10::cuda::CUDACachingAllocator to c10::CachingDeviceAllocator in LibTorch 2.6, so neither
// is named here (auto + the index work with both).
constexpr size_t kAggregate = 0;
}  // namespace

int64_t memory_allocated() {
  if (!torch::cuda::is_available()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return stats.allocated_bytes[kAggregate].current;
}

int64_t max_memory_allocated() {
  if (!torch::cuda::is_available()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return stats.allocated_bytes[kAggregate].peak;
}

void reset_peak_memory() {
  if (torch::cuda::is_available())
    c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
}

}  // namespace normexp::cuda
