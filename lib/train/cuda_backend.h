#pragma once
// CUDA-only operations. cuda_backend.cpp is compiled when LibTorch has CUDA; otherwise
// cuda_backend_stub.cpp provides versions that report the missing support.

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace normexp::cuda {

bool compiled_with_cuda();
std::string device_name();          // name of the current CUDA device
void synchronize();                 // waits for the current CUDA stream
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

}  // namespace normexp::cuda
