#include "data/randaugment.h"

#include <torch/torch.h>

namespace normexp::data {

const std::vector<AugOp>& randaugment_ops() {
  static const std::vector<AugOp> ops{
      AugOp::AutoContrast, AugOp::Equalize,   AugOp::Invert,     AugOp::Rotate,
      AugOp::Posterize,    AugOp::Solarize,   AugOp::Color,      AugOp::Contrast,
      AugOp::Brightness,   AugOp::Sharpness,  AugOp::ShearX,     AugOp::ShearY,
      AugOp::TranslateX,   AugOp::TranslateY,
  };
  return ops;
}

const at::Tensor& RandAugment::op_table(const at::Device& device) const {
  const std::string key = device.str();
  for (const auto& [k, t] : tables_)
    if (k == key) return t;
  std::vector<int64_t> table;
  for (AugOp op : randaugment_ops()) table.push_back(static_cast<int64_t>(op));
  tables_.emplace_back(key, torch::tensor(table, torch::kLong).to(device));
  return tables_.back().second;
}

at::Tensor RandAugment::magnitudes(const at::Tensor& ops, const at::Tensor& level,
                                   const at::Tensor& sign) {
  const auto m = level.to(torch::kDouble) / 10;
  auto is = [&](AugOp a) { return ops == static_cast<int64_t>(a); };
  auto v = torch::zeros_like(m);
  v = torch::where(is(AugOp::Rotate), 30 * m, v);
  v = torch::where(is(AugOp::ShearX) | is(AugOp::ShearY), 0.3 * m, v);
  v = torch::where(is(AugOp::TranslateX) | is(AugOp::TranslateY), 0.45 * m, v);
  v = torch::where(is(AugOp::Posterize), 4 - (4 * m).floor(), v);
  v = torch::where(is(AugOp::Solarize), 256 - (256 * m).floor(), v);
  const auto enhance =
      is(AugOp::Color) | is(AugOp::Contrast) | is(AugOp::Brightness) | is(AugOp::Sharpness);
  v = torch::where(enhance, (1 + sign.to(torch::kDouble) * 0.9 * m).clamp_min(0.1), v);
  return v;
}

at::Tensor RandAugment::operator()(const at::Tensor& images) const {
  const int64_t n = images.size(0), l = o_.layers;
  const auto d = images.options().dtype(torch::kDouble);
  // Every draw is made whatever it decides, so the generator advances the same way for every
  // batch of a given size.
  const auto choice = torch::randint(0, static_cast<int64_t>(randaugment_ops().size()), {n, l},
                                     d.dtype(torch::kLong));
  const auto fires = torch::rand({n, l}, d) < o_.prob;
  const auto level = (o_.magnitude + o_.magnitude_std * torch::randn({n, l}, d)).clamp(0, 10);
  const auto sign = torch::where(torch::rand({n, l}, d) < 0.5, -1.0, 1.0);
  return apply(images, choice, fires, level, sign);
}

at::Tensor RandAugment::apply(const at::Tensor& images, const at::Tensor& choice,
                              const at::Tensor& fires, const at::Tensor& level,
                              const at::Tensor& sign) const {
  const auto chosen =
      op_table(images.device()).index_select(0, choice.flatten()).view(choice.sizes());
  const auto ops = torch::where(fires, chosen, torch::full_like(chosen, -1));
  return apply_ops(images, ops, magnitudes(chosen, level, sign), sign, /*centre=*/{},
                   /*fill=*/{});
}

}  // namespace normexp::data
