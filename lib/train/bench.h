#pragma once
// `normexp bench CONFIG...`: the steady-state speed of an experiment's training step, through
// the same TrainStep that `normexp run` uses (pipeline, bf16, channels_last, CUDA graphs as
// configured). Synthetic uint8 images of the dataset's shape, resident on the device, stand in
// for the data: pixel values do not change the cost, and no dataset has to be present.
//
// Several configs are measured in one process, interleaved round by round (config A's steps,
// then B's, then A's again ...), so that their ratios are taken side by side under the same
// clocks and temperature.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "train/components.h"

namespace normexp::train {

struct BenchOptions {
  int64_t warmup = 20;  // untimed steps per config (the CUDA graph capture happens here)
  int64_t steps = 50;   // timed steps per config and round
  int64_t rounds = 3;   // rounds over all configs
  int64_t images = 0;   // resident synthetic images per config (0: 8 batches)
  // After the timed rounds, this many more steps per config under the profiler: each row
  // gets "profile" (analysis/profile.h), the top `profile_top` kernels (CUDA) or ops (CPU).
  int64_t profile = 0;
  size_t profile_top = 25;
  std::string trace_dir;  // if set, also a chrome trace per config: <dir>/<name>.trace.json
  // Called after each round with the rows measured so far (what bench_training would
  // return if it stopped there): `bench --out` writes them, so a process killed by a
  // deadline keeps its finished rounds.
  std::function<void(const nlohmann::json& rows)> on_round;
};

// One JSON object per config (see README "Benchmarks" for the fields), in the given order;
// every config must run on the same device. ConfigError for a bad config.
nlohmann::json bench_training(const std::vector<config::Experiment>& exps,
                              const ComponentFactory& components, const BenchOptions& options);

// Nearest-rank percentile (q in [0, 100]) of unsorted samples; 0 for none.
double percentile(std::vector<double> samples, double q);

}  // namespace normexp::train
