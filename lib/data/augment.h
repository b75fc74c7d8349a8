#pragma once
// Batched augmentation on whatever device the batch lives on (no per-image loops, no host
// round trips): random crop with zero padding, horizontal flip, normalization, and a loader
// that shuffles and slices a device-resident dataset.

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/batch_source.h"

namespace normexp::data {

// out[n] = x[n, :, dy[n] : dy[n]+out_h, dx[n] : dx[n]+out_w]; dy, dx int64 tensors (N).
at::Tensor crop(const at::Tensor& x, int64_t out_h, int64_t out_w, const at::Tensor& dy,
                const at::Tensor& dx);
// Zero-pads by `pad` on each side and crops back to the input size at a random offset per
// image (offsets uniform in [0, 2*pad], drawn from the device's global generator).
at::Tensor random_crop(const at::Tensor& x, int64_t pad);
// Mirrors each image left-right with probability 1/2.
at::Tensor random_hflip(const at::Tensor& x);
// Random erasing (Zhong et al. 2020; DeiT: probability 0.25) on a normalized float batch: with
// probability `prob` per image, a rectangle of area U(0.02, 1/3) of the image and aspect ratio
// log-uniform in [0.3, 1/0.3], at a uniform position, is filled with N(0, 1) noise per pixel
// and channel (timm's "pixel" mode). One draw per image: a rectangle taller or wider than the
// image is clamped to it minus one pixel, where timm redraws (up to 10 times).
at::Tensor random_erasing(const at::Tensor& x, double prob);
// uint8 (N,C,H,W) -> float (x/255 - mean)/std per channel.
at::Tensor normalize(const at::Tensor& x, const std::vector<double>& mean,
                     const std::vector<double>& std);
// The per-channel (scale, shift) of that map as (1,C,1,1) float tensors on `device`, so a
// training loop builds them once instead of copying them to the device every batch.
std::pair<at::Tensor, at::Tensor> normalize_affine(const std::vector<double>& mean,
                                                   const std::vector<double>& std,
                                                   const at::Device& device);

// Batches of a dataset that already lives on the training device.
class DeviceLoader : public BatchSource {
 public:
  DeviceLoader(at::Tensor x, at::Tensor y, int64_t batch_size, bool shuffle, bool drop_last);
  at::Device device() const override { return x_.device(); }
  // Draws this epoch's order (global generator of the data's device) when shuffling.
  void new_epoch() override;
  // This epoch's order (undefined when not shuffling), to checkpoint and restore mid-epoch.
  const at::Tensor& order() const override { return order_; }
  void set_order(at::Tensor order) override { order_ = std::move(order); }
  std::pair<at::Tensor, at::Tensor> batch(int64_t i) override;

 private:
  at::Tensor x_, y_, order_;
  bool shuffle_;
};

}  // namespace normexp::data
