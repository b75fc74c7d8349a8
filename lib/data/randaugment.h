#pragma once
// RandAugment (Cubuk et al. 2020) as timm's "rand-m9-mstd0.5-inc1", the setting DeiT trains
// ViTs with (Touvron et al. 2021): per image, `layers` ops drawn uniformly with replacement from
// timm's increasing-severity list, each applied with probability `prob`, at magnitude
// m = M + N(0, std²) clipped to [0, 10] (drawn per image and op), mapped as timm maps it:
//   ShearX/Y 0.3·m/10, TranslateX/Y 0.45·m/10 of the side, Rotate 30°·m/10 (random sign);
//   Color, Contrast, Brightness, Sharpness: factor 1 ± 0.9·m/10 (random sign);
//   Posterize keeps max(1, 4 − ⌊4·m/10⌋) bits (Pillow refuses 0); Solarize inverts from
//   256 − ⌊256·m/10⌋ up;
//   AutoContrast, Equalize, Invert.
// The ops are FastAA's (PIL's semantics, data/fastaa.h), one batched pass per layer. Where it
// differs from timm: no SolarizeAdd (14 of timm's 15 ops), and nearest resampling with black
// fill for the geometric ops (timm: bilinear or bicubic at random, grey fill).

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/fastaa.h"
#include "data/image_policy.h"

namespace normexp::data {

struct RandAugmentOptions {
  int64_t layers = 2;         // N
  double magnitude = 9;       // M, on timm's 0-10 scale
  double magnitude_std = 0.5; // 0: M exactly
  double prob = 0.5;          // per op (timm's default)
};

// The op list, in the order `choice` indexes it.
const std::vector<AugOp>& randaugment_ops();

class RandAugment : public ImagePolicy {
 public:
  explicit RandAugment(RandAugmentOptions options) : o_(options) {}
  at::Tensor operator()(const at::Tensor& images) const override;
  // The same with the draws given (for tests): `choice` int64 (N, L) indices into
  // randaugment_ops(), `fires` bool (N, L), `level` double (N, L) in [0, 10] (after the noise
  // and clipping), `sign` double (N, L) of +-1.
  at::Tensor apply(const at::Tensor& images, const at::Tensor& choice, const at::Tensor& fires,
                   const at::Tensor& level, const at::Tensor& sign) const;
  // Each op's argument for the aug:: functions at these levels (double, same shape): what
  // apply() hands them (geometric magnitudes unsigned; enhance factors signed).
  static at::Tensor magnitudes(const at::Tensor& ops, const at::Tensor& level,
                               const at::Tensor& sign);

 private:
  // The op list as an int64 tensor on each device it has run on (no copy per batch).
  const at::Tensor& op_table(const at::Device& device) const;

  RandAugmentOptions o_;
  mutable std::vector<std::pair<std::string, at::Tensor>> tables_;  // by device string
};

}  // namespace normexp::data
