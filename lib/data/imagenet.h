#pragma once
// ImageNet (ILSVRC 2012, Russakovsky et al. 2015) in the class-folder layout
// `<root>/train/<wnid>/*.JPEG`, `<root>/val/<wnid>/*.JPEG` — what `normexp data prepare
// imagenet` makes from the official archives, and what torchvision's ImageFolder reads.
// 1,281,167 training and 50,000 validation images of 1,000 classes; the validation set is
// the test set (Ikami et al. 2021 §4.3.1, Markou §5.1). Images stay on disk: batches come
// from a JpegLoader (decoding and the standard augmentations on worker threads).

#include <cstdint>
#include <filesystem>
#include <vector>

#include "config/schema.h"
#include "data/dataset.h"

namespace normexp::data {

inline constexpr const char* kImageNetRoot = "data/imagenet";
inline constexpr int64_t kImageNetTrain = 1281167, kImageNetVal = 50000, kImageNetClasses = 1000;
// The RGB mean and std of ImageNet's training images, in [0, 1] units, as every ImageNet
// recipe normalizes with (torchvision's reference scripts, He et al. 2016's released models).
inline const std::vector<double> kImageNetMean{0.485, 0.456, 0.406};
inline const std::vector<double> kImageNetStd{0.229, 0.224, 0.225};

class ImageNetDataset : public Dataset {
 public:
  // From the data section: root, image_size, resize, scale_min, train_size, test_size,
  // official_counts, workers, prefetch.
  explicit ImageNetDataset(const config::Params& p);

  DataShape shape() const override;  // 3 x image_size x image_size, 1,000 classes
  int64_t train_size() const override { return train_size_; }
  ImageData load() const override;   // lists the files; RunError naming what is missing
  Modality modality() const override { return Modality::Files; }

  static std::vector<config::OptionSpec> options();

 private:
  std::filesystem::path root_;
  int64_t image_size_, resize_;
  double scale_min_;
  int64_t train_size_, test_size_, classes_;
  bool official_;
  int workers_, prefetch_;
};

}  // namespace normexp::data
