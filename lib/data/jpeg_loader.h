#pragma once
// Batches of JPEG files decoded and augmented on the host by a pool of worker threads, for
// datasets too large to hold in memory (ImageNet: 1.28 M images, ~140 GB decoded).
//
// Each worker builds whole batches, a bounded number ahead of the one the trainer asks for;
// on CUDA they land in pinned memory and are copied asynchronously. Every image's random
// crop and flip come from a generator seeded by (the epoch's seed, its position in the
// epoch's order), so batches are identical whatever the number of workers or ranks, and a
// checkpoint's order() (the permutation and that seed) restores an epoch mid-way exactly.
// A file libjpeg cannot decode is left out of its batch and counted (skipped()), with a
// warning naming it; it never stops a run.

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "data/batch_source.h"
#include "data/image_folder.h"

namespace normexp::data {

// The standard ImageNet augmentations (Krizhevsky et al. 2012, Szegedy et al. 2015, as
// torchvision's reference recipe and He et al. 2016 use them): in training a crop of random
// area (`scale` of the image) and aspect ratio (`ratio`, log-uniform) resized to `size`, and a
// horizontal flip with probability 1/2; in evaluation the shorter side resized to `resize`
// and the central `size` x `size` crop.
struct JpegAugment {
  bool train = true;
  int size = 224, resize = 256;
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
};

// The crop box in the original image's pixels and the flip.
struct CropBox {
  double x0 = 0, y0 = 0, w = 0, h = 0;
  bool flip = false;
};

// The random-resized crop as torchvision's RandomResizedCrop.get_params draws it (ten tries
// at a random area and log-uniform ratio, then the central crop of the nearest allowed ratio)
// or the evaluation box, from a generator seeded by `seed`.
CropBox draw_crop(int width, int height, const JpegAugment& augment, uint64_t seed);

// Decodes one JPEG file and writes its augmented (3, size, size) uint8 pixels to `dst`.
// False (with `error`) for a file libjpeg cannot decode; RunError for a file it cannot read.
bool load_augmented(const std::string& path, const JpegAugment& augment, uint64_t seed,
                    unsigned char* dst, std::string& error);

struct JpegLoaderOptions {
  int64_t batch_size = 256;
  bool shuffle = true, drop_last = false;
  JpegAugment augment;
  int workers = 0;   // threads; 0: one per core
  int prefetch = 0;  // batches decoded ahead of the one asked for; 0: 2 per worker
  c10::Device device = c10::Device(c10::kCPU);
};

// A dataset of JPEG files as a Dataset hands it to the trainer (data::ImageData::files).
struct JpegFiles {
  std::shared_ptr<const ImageFiles> train, test;
  JpegAugment augment;  // `train` is set per split by the trainer
  int workers = 0, prefetch = 0;
};

class JpegLoader : public BatchSource {
 public:
  JpegLoader(std::shared_ptr<const ImageFiles> files, JpegLoaderOptions options);
  ~JpegLoader() override;
  JpegLoader(const JpegLoader&) = delete;
  JpegLoader& operator=(const JpegLoader&) = delete;

  at::Device device() const override { return options_.device; }
  // When shuffling: a permutation from the global CPU generator and one int64 seed for the
  // epoch's augmentations, as order() = [permutation..., seed]. Without shuffling the order
  // is the files' and the seed 0 (evaluation has nothing random).
  void new_epoch() override;
  const at::Tensor& order() const override { return order_; }
  void set_order(at::Tensor order) override;
  // Waits for batch i (restarting the workers at i when it is not the next one in line).
  std::pair<at::Tensor, at::Tensor> batch(int64_t i) override;

  int64_t skipped() const;
  int workers() const { return static_cast<int>(threads_.size()); }

 private:
  struct Epoch {
    std::vector<int64_t> order;  // empty: identity
    uint64_t seed = 0;
  };
  struct Ready {
    at::Tensor images, labels;
  };
  void work();
  Ready produce(int64_t begin, int64_t end, const Epoch& epoch);
  void restart_locked(std::shared_ptr<const Epoch> epoch);

  std::shared_ptr<const ImageFiles> files_;
  JpegLoaderOptions options_;
  at::Tensor order_;
  int depth_ = 1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Epoch> epoch_;
  uint64_t generation_ = 0;  // bumped when the stream restarts; older work is discarded
  int64_t next_ = 0;         // the next batch index a worker takes
  int64_t want_ = 0;         // the batch the trainer asks for next
  bool active_ = false;      // workers idle until the first batch() of an epoch
  bool stop_ = false;
  int64_t skipped_ = 0;
  std::exception_ptr error_;
  std::map<int64_t, Ready> ready_;
  std::vector<std::thread> threads_;
};

}  // namespace normexp::data
