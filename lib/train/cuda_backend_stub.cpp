// Built when LibTorch has no CUDA: every CUDA request fails loudly instead of silently.
#include <stdexcept>

#include "core/error.h"
#include "train/cuda_backend.h"

namespace normexp::cuda {

namespace {
[[noreturn]] void no_cuda() {
  throw RunError("this normexp was built against a LibTorch without CUDA");
}
}  // namespace

bool compiled_with_cuda() { return false; }
std::string device_name() { return ""; }
void synchronize() {}
void set_bf16_autocast(bool enabled) {
  if (enabled) no_cuda();
}
void clear_autocast_cache() {}
void set_cudnn_benchmark(bool) {}
at::Tensor rng_state() { return {}; }
void set_rng_state(const at::Tensor&) {}
int64_t memory_allocated() { return 0; }
int64_t max_memory_allocated() { return 0; }
void reset_peak_memory() {}

}  // namespace normexp::cuda
