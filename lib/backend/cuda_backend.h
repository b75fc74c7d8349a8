#pragma once
// CUDA-only operations. cuda_backend.cpp is compiled when LibTorch has CUDA; otherwise
// cuda_backend_stub.cpp provides versions that report the missing support.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::cuda {

bool compiled_with_cuda();
std::string device_name();          // name of the current CUDA device
void synchronize();                 // waits for the current CUDA stream
// Makes `index` the current CUDA device: the one later streams, generators, memory statistics
// and synchronize() refer to (a data-parallel rank's own GPU).
void set_device(int index);
void set_bf16_autocast(bool enabled);
void clear_autocast_cache();
void set_cudnn_benchmark(bool enabled);
// State of the default CUDA generator (for checkpoints); undefined tensor without CUDA.
at::Tensor rng_state();
void set_rng_state(const at::Tensor& state);
// Bytes held by the caching allocator's live tensors on the current device, now and at peak
// since reset_peak_memory() (0 without CUDA).
int64_t memory_allocated();
int64_t max_memory_allocated();
void reset_peak_memory();
// Autocast's cache of casted weights must be off while a graph is captured (a cached cast
// would be recorded once and then go stale); returns the previous setting.
bool set_autocast_cache_enabled(bool enabled);

// One captured CUDA graph. capture() records one call of `body` on a side stream (its kernels
// are recorded, not run) into a private memory pool; replay() runs them on the current
// stream. Tensors the body allocates stay valid, with their values updated by each replay.
// Random ops draw fresh numbers at every replay (LibTorch's graph-safe generator state).
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  // std::runtime_error with the reason when capture fails (e.g. a host synchronization in
  // the body); nothing the body recorded has run then, and the caller runs it eagerly.
  void capture(const std::function<void()>& body);
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Device-side times between marks, without host synchronization in between: mark() records
// an event on the current stream; intervals_ms() waits for the last one and returns the
// n-1 times between consecutive marks, in milliseconds.
class EventTimeline {
 public:
  EventTimeline();
  ~EventTimeline();
  void mark();
  std::vector<double> intervals_ms();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace normexp::cuda
