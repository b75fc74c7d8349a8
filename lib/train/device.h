#pragma once
#include <string>

#include <c10/core/Device.h>

#include "config/schema.h"

namespace normexp::train {

// train.device -> a device: "auto" is CUDA when available, else CPU. Asking for CUDA on a
// machine (or a LibTorch) without it is a ConfigError at train.device.
c10::Device resolve_device(const config::Params& train);
// "cpu (2 threads)" or "cuda:0 (NVIDIA H200)".
std::string describe_device(const c10::Device& device);
// Blocks until queued work on `device` is done (no-op on CPU); for honest timings.
void synchronize(const c10::Device& device);

}  // namespace normexp::train
