#include "data/augment.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace normexp::data {

at::Tensor crop(const at::Tensor& x, int64_t out_h, int64_t out_w, const at::Tensor& dy,
                const at::Tensor& dx) {
  TORCH_CHECK(x.dim() == 4, "crop expects (N, C, H, W), got ", x.sizes());
  const int64_t n = x.size(0), c = x.size(1);
  auto opts = dy.options().dtype(torch::kLong);
  // Two gathers (rows, then columns) keep the result in (N, C, h, w) order.
  auto rows = dy.view({n, 1}) + torch::arange(out_h, opts).view({1, out_h});
  auto cols = dx.view({n, 1}) + torch::arange(out_w, opts).view({1, out_w});
  auto by_rows = x.gather(2, rows.view({n, 1, out_h, 1}).expand({n, c, out_h, x.size(3)}));
  return by_rows.gather(3, cols.view({n, 1, 1, out_w}).expand({n, c, out_h, out_w}));
}

at::Tensor random_crop(const at::Tensor& x, int64_t pad) {
  if (pad <= 0) return x;
  const int64_t n = x.size(0);
  auto padded = torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0);
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  auto dy = torch::randint(0, 2 * pad + 1, {n}, opts);
  auto dx = torch::randint(0, 2 * pad + 1, {n}, opts);
  return crop(padded, x.size(2), x.size(3), dy, dx);
}

at::Tensor random_hflip(const at::Tensor& x) {
  auto flip = torch::rand({x.size(0), 1, 1, 1}, x.options().dtype(torch::kFloat)) < 0.5;
  return torch::where(flip, x.flip({3}), x);
}

at::Tensor random_erasing(const at::Tensor& x, double prob) {
  if (prob <= 0) return x;
  TORCH_CHECK(x.dim() == 4, "random_erasing expects (N, C, H, W), got ", x.sizes());
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
  const auto f = x.options().dtype(torch::kFloat);
  const auto area = torch::empty({n}, f).uniform_(0.02, 1.0 / 3) * static_cast<double>(h * w);
  const auto ratio = torch::empty({n}, f).uniform_(std::log(0.3), std::log(1 / 0.3)).exp_();
  const auto eh = (area * ratio).sqrt().round().clamp(1, std::max<int64_t>(1, h - 1));
  const auto ew = (area / ratio).sqrt().round().clamp(1, std::max<int64_t>(1, w - 1));
  const auto top = (torch::rand({n}, f) * (h - eh + 1)).floor();
  const auto left = (torch::rand({n}, f) * (w - ew + 1)).floor();
  const auto rows = torch::arange(h, f).view({1, h}), cols = torch::arange(w, f).view({1, w});
  const auto in_rows = rows.ge(top.view({n, 1})).logical_and(rows.lt((top + eh).view({n, 1})));
  const auto in_cols = cols.ge(left.view({n, 1})).logical_and(cols.lt((left + ew).view({n, 1})));
  const auto erase = torch::rand({n}, f).lt(prob).view({n, 1, 1});
  const auto mask = in_rows.view({n, h, 1}).logical_and(in_cols.view({n, 1, w})).logical_and(erase);
  return torch::where(mask.unsqueeze(1), torch::randn_like(x), x);
}

std::pair<at::Tensor, at::Tensor> normalize_affine(const std::vector<double>& mean,
                                                   const std::vector<double>& std,
                                                   const at::Device& device) {
  TORCH_CHECK(mean.size() == std.size(), "normalize: ", mean.size(), " means but ", std.size(),
              " stds");
  const auto c = static_cast<int64_t>(mean.size());
  std::vector<float> scale(c), shift(c);
  for (int64_t i = 0; i < c; ++i) {
    scale[i] = static_cast<float>(1.0 / (255.0 * std[i]));
    shift[i] = static_cast<float>(-mean[i] / std[i]);
  }
  return {torch::tensor(scale).view({1, c, 1, 1}).to(device),
          torch::tensor(shift).view({1, c, 1, 1}).to(device)};
}

at::Tensor normalize(const at::Tensor& x, const std::vector<double>& mean,
                     const std::vector<double>& std) {
  TORCH_CHECK(static_cast<int64_t>(mean.size()) == x.size(1), "normalize: ", x.size(1),
              " channels but ", mean.size(), " means");
  auto [scale, shift] = normalize_affine(mean, std, x.device());
  return torch::addcmul(shift, x.to(torch::kFloat), scale);
}

int64_t BatchPlan::num_batches() const {
  if (drop_last) return n / batch_size;
  const int64_t full = n / batch_size, rest = n % batch_size;
  return full + (rest > 0 && (keep_small_last || rest >= world) ? 1 : 0);
}

int64_t BatchPlan::global_batch_size(int64_t i) const {
  return std::min(n, (i + 1) * batch_size) - i * batch_size;
}

std::pair<int64_t, int64_t> BatchPlan::part(int64_t i) const {
  int64_t start = i * batch_size;
  int64_t end = std::min(n, start + batch_size);
  TORCH_CHECK(start < end, "batch ", i, " out of range (", n, " items, batch size ", batch_size,
              ")");
  if (world > 1) {  // this rank's part (empty when the batch has fewer items than ranks)
    const int64_t len = end - start;
    end = start + len * (rank + 1) / world;
    start += len * rank / world;
  }
  return {start, end};
}

void BatchSource::shard(int64_t rank, int64_t world, bool keep_small_last) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " outside a world of ",
              world);
  plan_.rank = rank;
  plan_.world = world;
  plan_.keep_small_last = keep_small_last;
}

at::Tensor BatchSource::shuffled_order(const c10::Device& device) const {
  const auto o = torch::TensorOptions().dtype(torch::kLong).device(device);
  const auto perm = torch::randperm(plan_.n, o);
  if (repeats_ <= 1) return perm;
  const int64_t unique = (plan_.n + repeats_ - 1) / repeats_;
  return perm.slice(0, 0, unique).repeat_interleave(repeats_).slice(0, 0, plan_.n);
}

DeviceLoader::DeviceLoader(at::Tensor x, at::Tensor y, int64_t batch_size, bool shuffle,
                           bool drop_last)
    : x_(std::move(x)), y_(std::move(y)), shuffle_(shuffle) {
  plan_.n = x_.size(0);
  plan_.batch_size = batch_size;
  plan_.drop_last = drop_last;
  TORCH_CHECK(y_.size(0) == plan_.n, "DeviceLoader: ", plan_.n, " images but ", y_.size(0),
              " labels");
  TORCH_CHECK(batch_size > 0, "DeviceLoader: batch size must be > 0");
}

void DeviceLoader::new_epoch() {
  if (shuffle_) order_ = shuffled_order(x_.device());
}

std::pair<at::Tensor, at::Tensor> DeviceLoader::batch(int64_t i) {
  const auto [start, end] = plan_.part(i);
  if (order_.defined()) {
    auto idx = order_.slice(0, start, end);
    return {x_.index_select(0, idx), y_.index_select(0, idx)};
  }
  return {x_.slice(0, start, end), y_.slice(0, start, end)};
}

}  // namespace normexp::data
