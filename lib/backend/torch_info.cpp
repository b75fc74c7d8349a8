#include "backend/torch_info.h"

#include <torch/torch.h>
#include <torch/version.h>

#include "backend/cuda_backend.h"

namespace normexp {

std::string torch_version() {
  return TORCH_VERSION;
}

bool cuda_available() {
  return torch::cuda::is_available();
}

std::string cuda_device_name() {
  return cuda_available() ? cuda::device_name() : std::string();
}

}  // namespace normexp
