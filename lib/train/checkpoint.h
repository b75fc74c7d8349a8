#pragma once
// checkpoint.pt: what a run needs to continue exactly where it stopped, as named entries:
//   model      parameters and buffers by their names in the model
//   optimizer  the optimizer's state (momentum buffers, step counts) by its own names
//   progress   step, position in the epoch, running sums, data order, RNG states
// Written atomically. A checkpoint that does not fit the model it is loaded into is refused
// with the first name that differs. Checkpoints of the first format (before 2026-11-30:
// tensors `model_<i>` by position, `optim_<i>` with names as byte tensors) still load; their
// model tensors are matched by position and shape.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include "optim/optimizer.h"

namespace normexp::train {

class Checkpoint {
 public:
  using Entries = std::map<std::string, at::Tensor>;

  Entries model, optimizer, progress;

  // Parameters then buffers of `module` (copied to the CPU).
  void set_model(const torch::nn::Module& module);
  // Copies the saved values into `module`; RunError naming `source` and the first missing,
  // extra or differently shaped entry.
  void restore_model(torch::nn::Module& module, const std::string& source) const;
  // RunError naming `source` when `key` is missing.
  const at::Tensor& progress_at(const std::string& key, const std::string& source) const;

  // The optimizer's state by its own names (copied to the CPU).
  void set_optimizer(const optim::Optimizer& optimizer);
  // progress "rng_cpu" and, on a CUDA device, "rng_cuda": the global generators' states, so a
  // resumed run draws what the uninterrupted one would have.
  void set_rng_states(const c10::Device& device);
  void restore_rng_states(const c10::Device& device, const std::string& source) const;
  // Text (a JSON record) as a uint8 progress entry, and back.
  void set_text(const std::string& key, const std::string& text);
  std::string text_at(const std::string& key, const std::string& source) const;

  void save(const std::filesystem::path& path) const;
  // RunError naming the file when it cannot be read or is not a normexp checkpoint.
  static Checkpoint load(const std::filesystem::path& path);

 private:
  std::vector<at::Tensor> legacy_model_;  // first format: by position
};

}  // namespace normexp::train
