#pragma once
#include <string>

namespace normexp {

std::string torch_version();  // e.g. "1.13.0"
bool cuda_available();
std::string cuda_device_name();  // "" without CUDA

}  // namespace normexp
