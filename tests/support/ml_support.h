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

// Narrow variants of the registered models for loops over every model (the defaults are
// CIFAR-sized: ResNet-110, WRN-28-10). Every width is a multiple of 16, so gn's default 16
// groups divide it; resnet_v1 gets the CIFAR stem, which keeps 2x2 maps in its last stage
// at 16 px (bcn's magnitude statistics need more than one position).
inline std::string narrow_model_options(const std::string& model) {
  if (model == "cnn9") return ", width: 0.25";
  if (model == "resnet") return ", depth: 8";
  if (model == "wrn") return ", depth: 10, width: 1";
  if (model == "resnet_v1") return ", depth: 18, width: 16, stem: cifar";
  if (model == "vit") return ", dim: 32, depth: 1, heads: 2, mlp_dim: 64";
  if (model == "mlp") return ", hidden: [32, 32]";
  if (model == "dgcnn") return ", k: 4, widths: [16, 32], emb_dims: 32";
  return "";
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
