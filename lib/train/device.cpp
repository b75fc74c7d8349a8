#include "train/device.h"

#include <torch/torch.h>

#include "core/torch_info.h"
#include "train/cuda_backend.h"

namespace normexp::train {

c10::Device resolve_device(const config::Params& train) {
  const std::string& want = train.get_string("device");
  const bool have_cuda = cuda_available();
  if (want == "cpu" || (want == "auto" && !have_cuda)) return c10::Device(c10::kCPU);
  if (!have_cuda) {
    throw train.error("device", std::string("is 'cuda' but no CUDA device is available (LibTorch ") +
                                    torch_version() +
                                    (cuda::compiled_with_cuda() ? "" : ", built without CUDA") +
                                    "); use --device cpu or auto");
  }
  return c10::Device(c10::kCUDA, 0);
}

std::string describe_device(const c10::Device& device) {
  if (device.is_cuda()) return device.str() + " (" + cuda::device_name() + ")";
  return "cpu (" + std::to_string(torch::get_num_threads()) + " threads)";
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) cuda::synchronize();
}

}  // namespace normexp::train
