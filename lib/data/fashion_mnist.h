#pragma once
// Fashion-MNIST [Xiao et al. 2017] from its IDX files, as Debian's `dataset-fashion-mnist`
// installs them (gzip-compressed, in /usr/share/datasets/fashion-mnist). An IDX file is a
// big-endian magic number (0x00000803: uint8 with 3 dimensions; 0x00000801: uint8 with 1),
// the dimensions as big-endian int32 (N, 28, 28 for images; N for labels), then the row-major
// uint8 data. 60,000 training and 10,000 test images of 10 balanced classes.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "config/schema.h"
#include "data/dataset.h"

namespace normexp::data {

inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";
inline constexpr int64_t kFashionMnistSide = 28;
inline constexpr int64_t kFashionMnistTrain = 60000, kFashionMnistTest = 10000;
// Label i is the class kFashionMnistClasses[i].
inline constexpr std::array<const char*, 10> kFashionMnistClasses{
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// The four files, without ".gz" (read_idx_file tries that name with and without it).
struct FashionMnistFiles {
  static constexpr const char* kTrainImages = "train-images-idx3-ubyte";
  static constexpr const char* kTrainLabels = "train-labels-idx1-ubyte";
  static constexpr const char* kTestImages = "t10k-images-idx3-ubyte";
  static constexpr const char* kTestLabels = "t10k-labels-idx1-ubyte";
};

// Reads one Fashion-MNIST IDX file: `path` itself may name the compressed or the plain file;
// "<name>.gz" is read when it exists, else "<name>" (so an unpacked copy works too). Images
// (expected_dims 3) come back as uint8 (N, 28, 28), labels (expected_dims 1) as int64 (N).
// Checks the magic number, the dimensions (28x28 images), that N is `expected_count`, that
// the data is complete with nothing after it, the gzip stream's integrity, and that every
// label is 0..9. Each problem is a RunError naming the file, what was expected and found.
at::Tensor read_idx_file(const std::filesystem::path& path, int expected_dims,
                         int64_t expected_count);

class FashionMnistDataset : public Dataset {
 public:
  // From the data section: root, pad, channels, train_size, test_size. A subset larger than
  // the official counts is a ConfigError naming the key.
  explicit FashionMnistDataset(const config::Params& p);
  // Tests: files holding `train_count` / `test_count` records (tiny ones) under `root`;
  // train_size / test_size 0 take all of them. Bad arguments are a RunError naming the key.
  FashionMnistDataset(std::filesystem::path root, int64_t pad, int64_t train_count,
                      int64_t test_count, int64_t channels = 1, int64_t train_size = 0,
                      int64_t test_size = 0);

  DataShape shape() const override;
  int64_t train_size() const override { return train_size_; }
  int64_t test_size() const { return test_size_; }
  ImageData load() const override;

  static std::vector<config::OptionSpec> options();

 private:
  std::filesystem::path root_;
  int64_t pad_, train_count_, test_count_, channels_;
  int64_t train_size_, test_size_;  // the subsets actually used (0 resolved to the counts)
};

}  // namespace normexp::data
