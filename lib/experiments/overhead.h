#pragma once
// Markou §5.5: the cost of BCN against LayerNorm (and BatchNorm for conv maps) at
// realistic shapes — forward time, backward time and the memory a forward pass keeps for
// backward. For conv maps also cwo's affine + noise layer (Ikami et al. 2021), which replaces
// BatchNorm there. Measured side by side in one process, interleaved (A B A B ...) so that
// clock and cache drift hit all equally; reported as ratios.

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

namespace normexp::experiments {

struct OverheadOptions {
  c10::Device device{c10::kCPU};
  int64_t warmup = 3;
  int64_t repeats = 20;
  // "NxTxD" token shapes (LayerNorm vs BCN over D) and "NxCxHxW" conv maps (BatchNorm2d vs
  // BCN over C). Empty: the defaults (ViT-B/16 and a CIFAR ViT; ResNet-50 stage maps).
  std::vector<std::string> shapes;
  bool bf16 = false;  // CUDA: bf16 inputs
  // After timing, this many forward + backward calls of each module per shape under the
  // profiler: each entry gets "profile" {module: analysis::profile_json}.
  int64_t profile = 0;
};

// One entry per (shape, pair): times in ms (median over repeats), bytes, and ratios.
nlohmann::json bench_norm_overhead(const OverheadOptions& options);

// The default shapes, for --help.
std::vector<std::string> default_overhead_shapes(bool cuda);

}  // namespace normexp::experiments
