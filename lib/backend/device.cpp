#include "backend/device.h"

#include <torch/torch.h>

#include <cstdlib>
#include <thread>

#include "backend/torch_info.h"
#include "backend/cuda_backend.h"

namespace normexp::backend {

std::optional<c10::Device> device_for(const std::string& want) {
  const bool have_cuda = cuda_available();
  if (want == "cpu" || (want == "auto" && !have_cuda)) return c10::Device(c10::kCPU);
  if (!have_cuda) return std::nullopt;
  return c10::Device(c10::kCUDA, 0);
}

c10::Device resolve_device(const config::Params& train) {
  const std::string& want = train.get_string("device");
  if (const auto device = device_for(want)) return *device;
  throw train.error("device", "is '" + want + "' but no CUDA device is available (LibTorch " +
                                  torch_version() +
                                  (cuda::compiled_with_cuda() ? "" : ", built without CUDA") +
                                  "); use --device cpu or auto");
}

std::string describe_device(const c10::Device& device) {
  if (device.is_cuda()) return device.str() + " (" + cuda::device_name() + ")";
  return "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) cuda::synchronize();
}

void configure_torch(const config::Params& train, int64_t seed, const c10::Device& device) {
  // Debian's LibTorch starts with one intra-op thread; use every core unless told otherwise.
  const auto threads = train.get_int("threads") > 0
                           ? train.get_int("threads")
                           : std::max<int64_t>(1, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(threads));
  const bool deterministic = train.get_bool("deterministic");
  // cuBLAS is deterministic only with a fixed workspace; LibTorch refuses to run matrix
  // products in deterministic mode without it. Set it unless the user did (before the first
  // cuBLAS handle exists, i.e. before any CUDA matrix product of this process).
  if (deterministic && device.is_cuda()) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  at::globalContext().setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
  if (device.is_cuda()) {
    // A rank's GPU becomes the current device: otherwise its streams, synchronize(), memory
    // statistics and the CUDA generator saved in checkpoints would all be GPU 0's.
    if (device.has_index()) cuda::set_device(device.index());
    cuda::set_cudnn_benchmark(!deterministic);
  }
  torch::manual_seed(static_cast<uint64_t>(seed));
}

}  // namespace normexp::backend
