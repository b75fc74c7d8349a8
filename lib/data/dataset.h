#pragma once
// Classification data held whole in memory: uint8 images (N, C, H, W) or float point clouds,
// labels int64 (N).
// The trainer moves it to the training device once; batching and augmentation happen there.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::data {

struct DataShape {
  int64_t channels = 3, height = 32, width = 32, classes = 10;
};

// What train_x holds: uint8 images (N, C, H, W), or float point clouds (N, 3, points, 1)
// (ModelNet40), which the training pipeline augments differently and does not normalize; or
// image files on disk (ImageNet) that a JpegLoader decodes and augments on the host, in
// `files` (train_x and the rest are then undefined).
enum class Modality { Images, Points, Files };

struct JpegFiles;  // data/jpeg_loader.h

struct ImageData {
  at::Tensor train_x, train_y, test_x, test_y;
  Modality modality = Modality::Images;
  DataShape shape;
  std::vector<double> mean, std;  // per channel, in [0, 1] pixel units (for normalization)
  std::string description;
  std::shared_ptr<const JpegFiles> files;  // Modality::Files
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual DataShape shape() const = 0;  // without loading anything (used by validate)
  virtual int64_t train_size() const = 0;  // ditto (the LR schedule needs steps per epoch)
  virtual ImageData load() const = 0;   // throws RunError naming missing/corrupt files
  // What load() will return, without loading (benchmarks build the matching pipeline).
  virtual Modality modality() const { return Modality::Images; }
};

// RunError unless the data is held in memory (train_x defined): for the tasks and tools that
// index the whole training set (capacity, SimCLR, data preview), which a streamed JPEG
// dataset (data.name imagenet) cannot serve. `what` names the task in the message.
void require_in_memory(const ImageData& data, const std::string& what);

// Per-channel mean and std of uint8 images, in [0, 1] units (computed in float64).
void channel_stats(const at::Tensor& images, std::vector<double>& mean, std::vector<double>& std);

}  // namespace normexp::data
