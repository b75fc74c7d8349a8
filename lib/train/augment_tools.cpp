#include "train/augment_tools.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "backend/torch_compat.h"
#include "backend/cuda_backend.h"
#include "backend/device.h"
#include "data/fastaa.h"
#include "train/components.h"
#include "train/pipeline.h"

namespace normexp::train {

namespace {

// Lays out uint8 (N, C, H, W) images in a grid, each pixel scale x scale, `gap` white pixels
// between cells; returns (C, rows*cell, cols*cell).
at::Tensor grid(const at::Tensor& images, int64_t cols, int64_t scale, int64_t gap) {
  const int64_t n = images.size(0), c = images.size(1);
  auto big = images.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
  const int64_t h = big.size(2), w = big.size(3);
  const int64_t rows = (n + cols - 1) / cols;
  auto canvas =
      torch::full({c, rows * (h + gap) + gap, cols * (w + gap) + gap}, 255, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = gap + (i / cols) * (h + gap), x = gap + (i % cols) * (w + gap);
    canvas.slice(1, y, y + h).slice(2, x, x + w).copy_(big[i]);
  }
  return canvas;
}

double ms_per_call(const c10::Device& device, int64_t warmup, int64_t iters,
                   const std::function<void()>& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  backend::synchronize(device);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) fn();
  backend::synchronize(device);
  const std::chrono::duration<double, std::milli> dt = std::chrono::steady_clock::now() - t0;
  return dt.count() / static_cast<double>(std::max<int64_t>(1, iters));
}

}  // namespace

PreviewImage augmentation_preview(const config::Experiment& exp,
                                  const ComponentFactory& components,
                                  const PreviewOptions& options) {
  const auto& data_p = exp.section("data");
  auto dataset = components.dataset(data_p);
  BatchPipeline pipeline = pipeline_from_config(data_p);  // before loading: config errors first
  data::ImageData data = dataset->load();
  data::require_in_memory(data, "data preview");
  const int64_t c = data.train_x.size(1);
  if (c != 1 && c != 3)
    throw RunError("data preview draws 1- or 3-channel images; this dataset has " +
                   std::to_string(c));
  pipeline.mean = data.mean;
  pipeline.std = data.std;
  const int64_t n = std::min<int64_t>(options.count, data.train_x.size(0));
  if (n <= 0) throw RunError("data preview: no training images");
  auto gen = compat::cpu_generator(static_cast<std::uint64_t>(exp.seed));
  auto pick = torch::randperm(data.train_x.size(0), gen, torch::kLong).slice(0, 0, n);
  auto originals = data.train_x.index_select(0, pick);

  torch::manual_seed(static_cast<std::uint64_t>(exp.seed));
  auto x = pipeline.augment_uint8(originals);
  if (pipeline.cutout > 0) {
    // Cutout zeroes normalized pixels, i.e. paints the training mean: show it that way.
    std::vector<float> mean255;
    for (double m : data.mean) mean255.push_back(static_cast<float>(255.0 * m));
    auto mean = torch::tensor(mean255).view({1, c, 1, 1});
    x = (data::random_cutout(x.to(torch::kFloat) - mean, pipeline.cutout) + mean)
            .round()
            .clamp(0, 255)
            .to(torch::kUInt8);
  }
  at::Tensor cells = x;
  if (options.compare) {
    // Original, 1-pixel white line, augmented: one cell.
    auto line = torch::full({n, c, x.size(2), 1}, 255, torch::kUInt8);
    cells = torch::cat({originals, line, x}, 3);
  }
  const auto cols = static_cast<int64_t>(
      std::ceil(std::sqrt(static_cast<double>(n) / (options.compare ? 2.0 : 1.0))));
  auto canvas = grid(cells, cols, std::max<int64_t>(1, options.scale), 4);
  auto hwc = canvas.permute({1, 2, 0}).contiguous();
  PreviewImage img;
  img.channels = static_cast<int>(c);
  img.height = static_cast<int>(hwc.size(0));
  img.width = static_cast<int>(hwc.size(1));
  img.pixels.assign(hwc.data_ptr<std::uint8_t>(), hwc.data_ptr<std::uint8_t>() + hwc.numel());
  return img;
}

std::vector<AugBenchRow> bench_augmentation(const config::Experiment& exp,
                                            const ComponentFactory& components,
                                            const std::vector<int64_t>& batches, int64_t iters,
                                            int64_t steps) {
  const auto& train_p = exp.section("train");
  const c10::Device device = backend::resolve_device(train_p);
  backend::configure_torch(train_p, exp.seed, device);
  Components b = components.build(exp, device);
  const auto shape = b.dataset->shape();
  const auto modality = b.dataset->modality();
  if (modality == data::Modality::Points)
    throw RunError("data bench times image augmentation on the device; data." +
                   exp.section("data").get_string("name") + " holds point clouds");
  if (modality == data::Modality::Files)
    throw RunError("data bench times augmentation on the device; data." +
                   exp.section("data").get_string("name") +
                   " is augmented by the JPEG loader's threads: `normexp data bench-jpeg` times those");
  BatchPipeline pipeline = run_pipeline(exp, modality);
  // Statistics of uniform random pixels; the values do not change the cost.
  pipeline.mean.assign(shape.channels, 0.5);
  pipeline.std.assign(shape.channels, 0.29);
  // As the trainer: channels_last inputs into a channels_last model (else cuDNN converts the
  // weights at every call and the step looks slower than a run's).
  if (pipeline.channels_last) use_channels_last(*b.model);
  const bool bf16 = train_p.get_bool("bf16") && device.is_cuda();
  const int64_t warmup = device.is_cuda() ? 5 : 1;
  auto& model = *b.model;
  model.train();

  std::vector<AugBenchRow> rows;
  for (int64_t batch : batches) {
    AugBenchRow r;
    r.batch = batch;
    auto u8 = torch::TensorOptions().dtype(torch::kUInt8).device(device);
    auto images = torch::randint(0, 256, {batch, shape.channels, shape.height, shape.width}, u8);
    auto labels = torch::randint(0, shape.classes, {batch}, u8.dtype(torch::kLong));
    r.pipeline_ms = ms_per_call(device, warmup, iters, [&] { pipeline.prepare(images, true); });
    if (pipeline.policy)
      r.policy_ms = ms_per_call(device, warmup, iters, [&] { (*pipeline.policy)(images); });
    auto x = pipeline.prepare(images, true);
    r.step_ms = ms_per_call(device, warmup, steps, [&] {
      if (bf16) cuda::set_bf16_autocast(true);
      auto logits = model.forward(x).to(torch::kFloat);
      if (bf16) cuda::set_bf16_autocast(false);
      auto loss = torch::nn::functional::cross_entropy(logits, labels);
      b.optimizer->zero_grad();
      loss.backward();
      b.optimizer->step(b.lr);
      if (bf16) cuda::clear_autocast_cache();
    });
    rows.push_back(r);
  }
  return rows;
}

}  // namespace normexp::train
