#pragma once
// The pieces of one training run that are independent of files and logging: turning uint8
// batches into network inputs, one evaluation pass, and the per-step update.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/augment.h"
#include "models/model.h"

namespace normexp::train {

struct BatchPipeline {
  bool augment = true;        // random crop (zero padding `pad`) + horizontal flip
  int64_t pad = 4;            // file 004 / He et al.: 4-pixel padding for CIFAR
  bool normalize = true;
  std::vector<double> mean, std;
  bool channels_last = false;
  // uint8 (N,C,H,W) on the device -> float input; augmentation only when `train`.
  at::Tensor prepare(const at::Tensor& images, bool train) const;

 private:
  mutable at::Tensor scale_, shift_;  // normalization, built once on the data's device
};

struct EvalResult {
  double loss = 0, top1_err = 0, top5_err = 0;  // errors in percent
  int64_t n = 0;
};

// One pass over `loader` in eval mode without gradients. top-5 becomes top-k with
// k = min(5, classes).
EvalResult evaluate(models::ModelImpl& model, data::DeviceLoader& loader,
                    const BatchPipeline& pipeline, bool bf16);

}  // namespace normexp::train
