#pragma once
// Test helper: one augmentation op applied to every image of a batch through its aug::
// function, the reference the batched policies (FastAutoAugment, RandAugment) are checked
// against.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "data/fastaa.h"

namespace normexp::testing {

using data::AugOp;
namespace aug = data::aug;

// `m` is the op's magnitude as aug:: takes it, signed for the geometric ops.
inline at::Tensor direct(AugOp op, const at::Tensor& x, double m) {
  const int64_t n = x.size(0), w = x.size(3), h = x.size(2);
  auto v = torch::full({n}, m, torch::kDouble);
  switch (op) {
    case AugOp::ShearX:
      return aug::shear_x(x, v);
    case AugOp::ShearY:
      return aug::shear_y(x, v);
    case AugOp::TranslateX:
      return aug::translate_x(x, v * w);
    case AugOp::TranslateY:
      return aug::translate_y(x, v * h);
    case AugOp::Rotate:
      return aug::rotate(x, v);
    case AugOp::AutoContrast:
      return aug::auto_contrast(x);
    case AugOp::Invert:
      return aug::invert(x);
    case AugOp::Equalize:
      return aug::equalize(x);
    case AugOp::Solarize:
      return aug::solarize(x, v);
    case AugOp::Posterize:
      return aug::posterize(x, v);
    case AugOp::Contrast:
      return aug::contrast(x, v);
    case AugOp::Color:
      return aug::color(x, v);
    case AugOp::Brightness:
      return aug::brightness(x, v);
    case AugOp::Sharpness:
      return aug::sharpness(x, v);
    case AugOp::Cutout:
      break;
  }
  ADD_FAILURE() << "no direct form";
  return x;
}

}  // namespace normexp::testing
