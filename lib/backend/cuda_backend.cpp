#include "backend/cuda_backend.h"

#include <torch/torch.h>

#include <ATen/autocast_mode.h>
#include <ATen/core/CachingHostAllocator.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include <mutex>
#include <stdexcept>

#include "backend/torch_compat.h"

namespace normexp::cuda {

bool compiled_with_cuda() { return true; }

std::string device_name() {
  const auto* props = at::cuda::getCurrentDeviceProperties();
  return props ? std::string(props->name) : std::string("cuda");
}

void synchronize() { torch::cuda::synchronize(); }

void set_device(int index) { c10::cuda::set_device(static_cast<c10::DeviceIndex>(index)); }

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

bool set_autocast_cache_enabled(bool enabled) {
  const bool was = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(enabled);
  return was;
}

namespace {
// LibTorch's CUDAGraph whose failed capture can be undone. When the body invalidated the
// capture (a host synchronization, say), capture_end() throws at cudaStreamEndCapture, before
// it ends the random generators' capture and hands the memory pool back (LibTorch 2.11,
// aten/src/ATen/cuda/CUDAGraph.cpp). Left so, the next eager random op throws ("Offset
// increment outside graph capture encountered unexpectedly") and the allocators keep routing
// allocations to the dead capture's pool: the eager fallback would fail on its first step.
class UndoableGraph : public at::cuda::CUDAGraph {
 public:
  // After a throwing capture_begin/body/capture_end: each repair on its own, none throws.
  void undo_failed_capture() noexcept {
    // What CUDAGeneratorState::capture_epilogue() does to the flag (the function itself is
    // not exported from libtorch_cuda); the intragraph offset it also returns served only
    // the replays this graph will never have.
    for (auto& entry : captured_generator_states_) entry.first->capturing_ = false;
    if (capture_dev_ == UNDEFINED_DEVICE) return;  // capture_begin never reached the pool
    try {
      c10::cuda::CUDACachingAllocator::endAllocateToPool(capture_dev_, mempool_id_);
      // The pool's blocks go back to the device once nothing of the capture holds them.
      c10::cuda::CUDACachingAllocator::releasePool(capture_dev_, mempool_id_);
    } catch (const std::exception&) {
    }
    try {
      at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(mempool_id_);
    } catch (const std::exception&) {
    }
  }
};
}  // namespace

struct Graph::Impl {
  std::unique_ptr<UndoableGraph> graph;
  bool captured = false;
};

Graph::Graph() : impl_(std::make_unique<Impl>()) {}

Graph::~Graph() {
  // A graph whose capture failed half-way is released without reset(): cleaning up after an
  // invalidated capture is what can throw, and a destructor must not.
  if (impl_ && !impl_->captured) (void)impl_->graph.release();
}

void Graph::capture(const std::function<void()>& body) {
  if (impl_->captured) throw std::logic_error("Graph::capture called twice");
  // Capture on a side stream (the legacy default stream cannot be captured) that first waits
  // for everything queued so far on the current one.
  const auto main = at::cuda::getCurrentCUDAStream();
  const auto side = at::cuda::getStreamFromPool();
  at::cuda::CUDAEvent ready;
  ready.record(main);
  ready.block(side);
  impl_->graph = std::make_unique<UndoableGraph>();
  const bool cache = set_autocast_cache_enabled(false);
  std::string error;
  {
    c10::cuda::CUDAStreamGuard guard(side);
    bool begun = false;
    try {
      impl_->graph->capture_begin();
      begun = true;
      body();
      impl_->graph->capture_end();
      impl_->captured = true;
    } catch (const std::exception& e) {
      error = e.what();
      bool ended = false;
      if (begun) {
        try {
          impl_->graph->capture_end();  // ends the stream capture and the private pool
          ended = true;
        } catch (const std::exception&) {
        }
      }
      if (!ended) impl_->graph->undo_failed_capture();
      // An invalidated capture can leave a sticky error for the next CUDA call: consume it.
      (void)cudaGetLastError();
    }
  }
  set_autocast_cache_enabled(cache);
  if (!impl_->captured) {
    (void)impl_->graph.release();  // see ~Graph
    // First line only: LibTorch appends a long C++ backtrace to its messages.
    throw std::runtime_error(error.substr(0, error.find('\n')));
  }
  // Later work on the current stream (the replays) comes after the capture's bookkeeping.
  at::cuda::CUDAEvent done;
  done.record(side);
  done.block(main);
}

void Graph::replay() {
  if (!impl_->captured) throw std::logic_error("Graph::replay before a successful capture");
  impl_->graph->replay();
}

struct EventTimeline::Impl {
  std::vector<at::cuda::CUDAEvent> events;
};

EventTimeline::EventTimeline() : impl_(std::make_unique<Impl>()) {}
EventTimeline::~EventTimeline() = default;

void EventTimeline::mark() {
  impl_->events.emplace_back(cudaEventDefault);  // timing enabled (no cudaEventDisableTiming)
  impl_->events.back().record(at::cuda::getCurrentCUDAStream());
}

std::vector<double> EventTimeline::intervals_ms() {
  std::vector<double> out;
  if (impl_->events.size() < 2) return out;
  impl_->events.back().synchronize();
  for (size_t i = 1; i < impl_->events.size(); ++i)
    out.push_back(impl_->events[i - 1].elapsed_time(impl_->events[i]));
  return out;
}

}  // namespace normexp::cuda
