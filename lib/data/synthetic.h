#pragma once
#include <vector>

#include "config/schema.h"
#include "data/dataset.h"

namespace normexp::data {

// A learnable image classification task made from a seed, so every feature can be tried
// without downloading anything. Each class has a smooth random colour pattern (coarse plus
// finer texture); an image is its class pattern at a random translation (up to `shift`
// pixels) and contrast, plus Gaussian pixel noise of std `noise` (relative to the pattern's
// std). Classes are balanced. The same data.seed always gives the same images.
class SyntheticDataset : public Dataset {
 public:
  explicit SyntheticDataset(const config::Params& p);
  DataShape shape() const override { return shape_; }
  int64_t train_size() const override { return train_size_; }
  ImageData load() const override;

  static std::vector<config::OptionSpec> options();

 private:
  DataShape shape_;
  int64_t train_size_, test_size_, shift_, seed_;
  double noise_;
};

}  // namespace normexp::data
