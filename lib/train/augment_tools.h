#pragma once
// What `normexp data preview|bench` do with an experiment's data section: a picture of the
// augmented training images, and the cost of the augmentation beside a training step.

#include <cstdint>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "train/components.h"

namespace normexp::train {

struct PreviewOptions {
  int64_t count = 64;    // images in the grid
  int64_t scale = 3;     // each pixel drawn as scale x scale
  bool compare = false;  // each augmented image beside its original
};

struct PreviewImage {
  std::vector<std::uint8_t> pixels;  // row-major, `channels` values per pixel
  int width = 0, height = 0, channels = 3;
};

// Training images (drawn at random with the experiment's seed, on the CPU) through the
// training pipeline as the network sees them, before normalization: policy, crop, flip, and
// Cutout drawn in the mean colour (zero after normalization). Loads the dataset.
PreviewImage augmentation_preview(const config::Experiment& exp,
                                  const ComponentFactory& components,
                                  const PreviewOptions& options);

struct AugBenchRow {
  int64_t batch = 0;
  double pipeline_ms = 0;  // the whole training-input pipeline (data.augment, cutout, normalize)
  double policy_ms = 0;    // the FastAA policy alone (0 without one)
  double step_ms = 0;      // forward + loss + backward + optimizer step of the config's model
};

// On train.device, with random uint8 images of the dataset's shape (no data is read).
// `iters` timed pipeline calls and `steps` timed training steps per batch size, after warm-up.
std::vector<AugBenchRow> bench_augmentation(const config::Experiment& exp,
                                            const ComponentFactory& components,
                                            const std::vector<int64_t>& batches, int64_t iters,
                                            int64_t steps);

}  // namespace normexp::train
