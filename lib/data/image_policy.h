#pragma once
// A learned or random augmentation policy over uint8 (N, C, H, W) batches on their device,
// applied before crop + flip (FastAutoAugment, data/fastaa.h; RandAugment, data/randaugment.h).

#include <ATen/core/Tensor.h>

namespace normexp::data {

class ImagePolicy {
 public:
  virtual ~ImagePolicy() = default;
  // uint8 (N, C, H, W) in and out, C = 3 (RGB) or 1 (grey); random numbers only from the
  // global generator of the batch's device.
  virtual at::Tensor operator()(const at::Tensor& images) const = 0;
};

}  // namespace normexp::data
