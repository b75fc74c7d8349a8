#pragma once
// Helpers for the LibTorch tests: experiments from inline YAML through the real schema.

#include <string>
#include <vector>

#include "config/experiment.h"
#include "config/test_support.h"
#include "registry/builtin.h"

namespace normexp::testing {

inline config::Experiment experiment_from(const TempDir& dir, const std::string& yaml,
                                          const std::vector<std::string>& sets = {}) {
  const auto path = dir.write("exp.yaml", yaml);
  return config::load_experiment(path, sets, registry::experiment_schema());
}

// A tiny, fast experiment: 8x8 synthetic images, narrow cnn9. On the CPU even where a GPU is
// present: tests built on it compare runs exactly (tests/train/step_test.cpp has the CUDA ones).
inline const char* kTinyYaml = R"(name: tiny
data: {name: synthetic, classes: 4, train_size: 256, test_size: 64, resolution: 8, shift: 1, noise: 0.5}
model: {name: cnn9, width: 0.125}
norm: {name: cwo}
optim: {name: sgd, lr: 0.05, weight_decay: 1.0e-3}
schedule: {name: cosine}
train: {epochs: 3, batch_size: 32, progress: none, threads: 1, device: cpu}
)";

}  // namespace normexp::testing
