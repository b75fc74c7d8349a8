#pragma once
// The device a run trains on and the process-wide LibTorch settings it runs under.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "config/schema.h"

namespace normexp::backend {

// What train.device and every --device flag accept. "gpu" means "cuda": it is the name
// Lightning's accelerator uses, and one letter from "cpu", so refusing it suggested the CPU.
inline const std::vector<std::string>& device_choices() {
  static const std::vector<std::string> choices{"auto", "cpu", "cuda", "gpu"};
  return choices;
}
// The device one of device_choices() names on this machine; none where it asks for CUDA
// ("cuda", "gpu") and this machine or this LibTorch has none.
std::optional<c10::Device> device_for(const std::string& want);

// train.device -> a device: "auto" is CUDA when available, else CPU. Asking for CUDA on a
// machine (or a LibTorch) without it is a ConfigError at train.device.
c10::Device resolve_device(const config::Params& train);
// "cpu (2 threads)" or "cuda:0 (NVIDIA H200)".
std::string describe_device(const c10::Device& device);
// Blocks until queued work on `device` is done (no-op on CPU); for honest timings.
void synchronize(const c10::Device& device);

// From the train section: CPU threads (0: every core), deterministic algorithms, cuDNN
// benchmark; then seeds LibTorch's generators with `seed`.
void configure_torch(const config::Params& train, int64_t seed, const c10::Device& device);

}  // namespace normexp::backend
