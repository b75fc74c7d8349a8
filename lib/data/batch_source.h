#pragma once
// What the trainer and evaluation read batches from: a dataset held on the training device
// (DeviceLoader, data/augment.h) or JPEG files decoded by worker threads (JpegLoader,
// data/jpeg_loader.h). Both split the data the same way (BatchPlan), so data-parallel
// sharding, checkpoints and resuming mid-epoch work alike for every dataset.

#include <cstdint>
#include <utility>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace normexp::data {

// How n items split into batches of `batch_size` in epoch order and, data-parallel, into the
// ranks' parts of each batch: rank r takes a contiguous part of global batch i (parts differ in
// size by at most one), so the `world` ranks together see exactly the batches of one process.
struct BatchPlan {
  int64_t n = 0, batch_size = 1;
  bool drop_last = false;
  int64_t rank = 0, world = 1;
  // A last batch smaller than `world` would leave some rank without an item: training leaves
  // it out of num_batches() (false); evaluation keeps it (true), those ranks get empty parts.
  bool keep_small_last = true;

  int64_t num_batches() const;
  int64_t global_batch_size(int64_t i) const;
  // [begin, end) positions in the epoch's order of this rank's part of batch i.
  std::pair<int64_t, int64_t> part(int64_t i) const;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  int64_t size() const { return plan_.n; }
  virtual at::Device device() const = 0;
  int64_t num_batches() const { return plan_.num_batches(); }
  // The size of global batch i (what the ranks' parts add up to).
  int64_t global_batch_size(int64_t i) const { return plan_.global_batch_size(i); }
  // Data-parallel: batch(i) becomes rank `rank`'s part of global batch i (see BatchPlan).
  void shard(int64_t rank, int64_t world, bool keep_small_last);

  // Repeated augmentation (Hoffer et al. 2020; DeiT: 3): a shuffled epoch visits the first
  // ceil(n / r) images of a permutation r times each, the copies next to each other (so in
  // one batch, each augmented on its own), n positions in all. 1: a plain permutation.
  void set_repeats(int64_t repeats) { repeats_ = repeats; }

  // Starts an epoch: draws its order (and whatever else is random per epoch) from the global
  // CPU/device generator, so a restored RNG state gives the same epoch again.
  virtual void new_epoch() = 0;
  // Everything random about the current epoch as one int64 tensor (undefined when nothing
  // is): what checkpoints save and data-parallel rank 0 broadcasts. Opaque to callers.
  virtual const at::Tensor& order() const = 0;
  virtual void set_order(at::Tensor order) = 0;
  // uint8 images (N, C, H, W) (or float points) and int64 labels of batch i of the current
  // epoch on device(): this rank's part of it when sharded.
  virtual std::pair<at::Tensor, at::Tensor> batch(int64_t i) = 0;

 protected:
  // The epoch's shuffled order of plan_.n positions with repeats_ (int64 on `device`).
  at::Tensor shuffled_order(const c10::Device& device) const;

  BatchPlan plan_;
  int64_t repeats_ = 1;
};

}  // namespace normexp::data
