#include "data/synthetic.h"

#include <torch/torch.h>

#include "backend/torch_compat.h"
#include "data/augment.h"

namespace normexp::data {

using config::at_least;
using config::opt_float;
using config::opt_int;

std::vector<config::OptionSpec> SyntheticDataset::options() {
  return {
      opt_int("classes", 10, "number of classes", at_least(2)),
      opt_int("train_size", 10000, "training images", at_least(1)),
      opt_int("test_size", 2000, "test images", at_least(1)),
      opt_int("resolution", 32, "image height and width in pixels", at_least(4)),
      opt_int("channels", 3, "image channels", at_least(1)),
      opt_float("noise", 4.0, "pixel noise std relative to the class pattern (difficulty)",
                at_least(0)),
      opt_int("shift", 4, "maximum random translation of the pattern, pixels", at_least(0)),
      opt_int("seed", 0, "seed of the generated data (independent of the run seed)",
              at_least(0)),
  };
}

SyntheticDataset::SyntheticDataset(const config::Params& p)
    : train_size_(p.get_int("train_size")),
      test_size_(p.get_int("test_size")),
      shift_(p.get_int("shift")),
      seed_(p.get_int("seed")),
      noise_(p.get_float("noise")) {
  shape_.classes = p.get_int("classes");
  shape_.channels = p.get_int("channels");
  shape_.height = shape_.width = p.get_int("resolution");
}

namespace {
torch::Tensor smooth_patterns(int64_t k, int64_t c, int64_t grid, int64_t h, int64_t w,
                              at::Generator& gen) {
  auto coarse = torch::randn({k, c, grid, grid}, gen);
  namespace F = torch::nn::functional;
  return F::interpolate(coarse, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{h, w})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

// Draws `n` images of the task, in chunks to bound memory for large sizes.
void draw(const torch::Tensor& patterns, int64_t n, int64_t h, int64_t w, int64_t shift,
          double noise, at::Generator& gen, torch::Tensor& images, torch::Tensor& labels) {
  const int64_t k = patterns.size(0), c = patterns.size(1);
  labels = torch::arange(n, torch::kLong).remainder(k);
  labels = labels.index_select(0, torch::randperm(n, gen, torch::kLong));
  images = torch::empty({n, c, h, w}, torch::kUInt8);
  constexpr int64_t kChunk = 4096;
  for (int64_t s = 0; s < n; s += kChunk) {
    const int64_t e = std::min(n, s + kChunk), m = e - s;
    auto y = labels.slice(0, s, e);
    auto dy = torch::randint(0, 2 * shift + 1, {m}, gen, torch::kLong);
    auto dx = torch::randint(0, 2 * shift + 1, {m}, gen, torch::kLong);
    auto contrast = torch::rand({m, 1, 1, 1}, gen) * 0.8 + 0.6;
    auto x = crop(patterns.index_select(0, y), h, w, dy, dx) * contrast;
    x = x + torch::randn({m, c, h, w}, gen) * noise;
    // ~3 std of the pattern maps onto the uint8 range around mid-grey.
    images.slice(0, s, e).copy_((x * 40.0 + 128.0).round_().clamp_(0, 255).to(torch::kUInt8));
  }
}
}  // namespace

ImageData SyntheticDataset::load() const {
  torch::NoGradGuard no_grad;
  auto gen = compat::cpu_generator(static_cast<uint64_t>(seed_) * 2654435761ULL + 17);
  const int64_t k = shape_.classes, c = shape_.channels, h = shape_.height, w = shape_.width;
  const int64_t ph = h + 2 * shift_, pw = w + 2 * shift_;
  auto patterns = smooth_patterns(k, c, 4, ph, pw, gen) +
                  0.5 * smooth_patterns(k, c, std::max<int64_t>(4, h / 4), ph, pw, gen);
  // Unit std per pattern, so `noise` is a signal-to-noise ratio.
  patterns = patterns / patterns.flatten(1).std(1).view({k, 1, 1, 1});

  ImageData out;
  out.shape = shape_;
  draw(patterns, train_size_, h, w, shift_, noise_, gen, out.train_x, out.train_y);
  draw(patterns, test_size_, h, w, shift_, noise_, gen, out.test_x, out.test_y);
  channel_stats(out.train_x, out.mean, out.std);
  out.description = "synthetic " + std::to_string(k) + " classes, " + std::to_string(c) + "x" +
                    std::to_string(h) + "x" + std::to_string(w) + ", " +
                    std::to_string(train_size_) + " train / " + std::to_string(test_size_) +
                    " test";
  return out;
}

}  // namespace normexp::data
