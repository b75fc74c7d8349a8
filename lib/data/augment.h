#pragma once
// Batched augmentation on whatever device the batch lives on (no per-image loops, no host
// round trips): random crop with zero padding, horizontal flip, normalization, and a loader
// that shuffles and slices a device-resident dataset.

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::data {

// out[n] = x[n, :, dy[n] : dy[n]+out_h, dx[n] : dx[n]+out_w]; dy, dx int64 tensors (N).
at::Tensor crop(const at::Tensor& x, int64_t out_h, int64_t out_w, const at::Tensor& dy,
                const at::Tensor& dx);
// Zero-pads by `pad` on each side and crops back to the input size at a random offset per
// image (offsets uniform in [0, 2*pad], drawn from the device's global generator).
at::Tensor random_crop(const at::Tensor& x, int64_t pad);
// Mirrors each image left-right with probability 1/2.
at::Tensor random_hflip(const at::Tensor& x);
// uint8 (N,C,H,W) -> float (x/255 - mean)/std per channel.
at::Tensor normalize(const at::Tensor& x, const std::vector<double>& mean,
                     const std::vector<double>& std);
// The per-channel (scale, shift) of that map as (1,C,1,1) float tensors on `device`, so a
// training loop builds them once instead of copying them to the device every batch.
std::pair<at::Tensor, at::Tensor> normalize_affine(const std::vector<double>& mean,
                                                   const std::vector<double>& std,
                                                   const at::Device& device);

// Batches of a dataset that already lives on the training device.
class DeviceLoader {
 public:
  DeviceLoader(at::Tensor x, at::Tensor y, int64_t batch_size, bool shuffle, bool drop_last);
  int64_t size() const { return n_; }
  at::Device device() const { return x_.device(); }
  int64_t num_batches() const;
  // Draws this epoch's order (global generator of the data's device) when shuffling.
  void new_epoch();
  // This epoch's order (undefined when not shuffling), to checkpoint and restore mid-epoch.
  const at::Tensor& order() const { return order_; }
  void set_order(at::Tensor order) { order_ = std::move(order); }
  // uint8 images and int64 labels of batch i of the current epoch (this rank's part of it
  // when sharded).
  std::pair<at::Tensor, at::Tensor> batch(int64_t i) const;

  // Data-parallel: batch(i) becomes rank `rank`'s contiguous part of global batch i (parts
  // differ in size by at most one), so the `world` ranks together see exactly the batches of
  // one process, in the same epoch order. A last batch smaller than `world` would leave some
  // rank without an image: training leaves it out of num_batches() (`keep_small_last`
  // false); evaluation keeps it (`true`) and those ranks get empty parts.
  void shard(int64_t rank, int64_t world, bool keep_small_last);
  // The size of global batch i (what the ranks' parts add up to).
  int64_t global_batch_size(int64_t i) const;

 private:
  at::Tensor x_, y_, order_;
  int64_t n_, batch_size_;
  bool shuffle_, drop_last_;
  int64_t rank_ = 0, world_ = 1;
  bool keep_small_last_ = true;
};

}  // namespace normexp::data
