// Built when LibTorch has no CUDA: every CUDA request fails loudly instead of silently.
#include <stdexcept>

#include "core/error.h"
#include "backend/cuda_backend.h"

namespace normexp::cuda {

namespace {
[[noreturn]] void no_cuda() {
  throw RunError("this normexp was built against a LibTorch without CUDA");
}
}  // namespace

bool compiled_with_cuda() { return false; }
std::string device_name() { return ""; }
void synchronize() {}
void set_device(int) { no_cuda(); }
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
bool set_autocast_cache_enabled(bool) { return true; }

// Never constructed without CUDA (TrainStep checks the device first); fail loudly if it is.
struct Graph::Impl {};
Graph::Graph() { no_cuda(); }
Graph::~Graph() = default;
void Graph::capture(const std::function<void()>&) { no_cuda(); }
void Graph::replay() { no_cuda(); }

struct EventTimeline::Impl {};
EventTimeline::EventTimeline() { no_cuda(); }
EventTimeline::~EventTimeline() = default;
void EventTimeline::mark() { no_cuda(); }
std::vector<double> EventTimeline::intervals_ms() { no_cuda(); }

}  // namespace normexp::cuda
