#include "data/mix.h"

#include <torch/torch.h>

namespace normexp::data {

at::Tensor sample_beta(double alpha, int64_t n, const at::TensorOptions& like) {
  const auto g = torch::_standard_gamma(torch::full({2, n}, alpha, like.dtype(torch::kFloat)));
  return g[0] / (g[0] + g[1]);
}

namespace {

MixedBatch mixup(const at::Tensor& x, const at::Tensor& partner, double alpha) {
  const auto lam = sample_beta(alpha, 1, x.options()).squeeze(0);
  return {torch::lerp(partner, x, lam.to(x.scalar_type())), lam};
}

// The box of side ratio sqrt(1 − λ) at a uniform centre, clipped to the image (Yun et al.
// 2019, Algorithm A1); λ is then recomputed from the clipped box's area.
MixedBatch cutmix(const at::Tensor& x, const at::Tensor& partner, double alpha) {
  const int64_t h = x.size(2), w = x.size(3);
  const auto f = x.options().dtype(torch::kFloat);
  // Scalars only: a tensor built from host values would be a copy, not allowed in a graph.
  const auto ratio = (1 - sample_beta(alpha, 1, f)).sqrt();
  const auto cy = (torch::rand({1}, f) * h).floor(), cx = (torch::rand({1}, f) * w).floor();
  const auto half_h = (ratio * h).floor().div(2).floor();
  const auto half_w = (ratio * w).floor().div(2).floor();
  const auto rows = torch::arange(h, f), cols = torch::arange(w, f);
  const auto in_rows = rows.ge((cy - half_h).clamp_min(0)).logical_and(
      rows.lt((cy + half_h).clamp_max(static_cast<double>(h))));
  const auto in_cols = cols.ge((cx - half_w).clamp_min(0)).logical_and(
      cols.lt((cx + half_w).clamp_max(static_cast<double>(w))));
  const auto box = in_rows.view({h, 1}).logical_and(in_cols.view({1, w}));  // (H, W)
  const auto lam = 1 - box.to(torch::kFloat).mean();
  return {torch::where(box, partner, x), lam};
}

}  // namespace

MixedBatch mix_batch(const at::Tensor& x, const MixOptions& o) {
  const auto partner = x.flip(0);
  if (o.mixup_alpha > 0 && o.cutmix_alpha <= 0) return mixup(x, partner, o.mixup_alpha);
  if (o.cutmix_alpha > 0 && o.mixup_alpha <= 0) return cutmix(x, partner, o.cutmix_alpha);
  // Both: compute both, keep one per batch (a device-side choice, no branch on the host).
  const auto a = mixup(x, partner, o.mixup_alpha), b = cutmix(x, partner, o.cutmix_alpha);
  const auto use_cutmix = torch::rand({}, x.options().dtype(torch::kFloat)).lt(o.switch_prob);
  return {torch::where(use_cutmix, b.x, a.x), torch::where(use_cutmix, b.lam, a.lam)};
}

}  // namespace normexp::data
