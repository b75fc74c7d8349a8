#pragma once
// Margins and flatness (Akbar §8, Experiment 3): the margin of a binary classifier on
// (x, y) is f(x)·y with y in {-1, +1} and f(x) the raw output; flatness is measured as the
// accuracy that survives Gaussian noise added to every parameter, for growing noise std.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::analysis {

// outputs (N) or (N, 1), labels (N) in {-1, +1} -> margins (N).
at::Tensor margins(const at::Tensor& outputs, const at::Tensor& labels_pm1);

struct MarginSummary {
  double mean = 0, median = 0, min = 0, max = 0, std = 0;
  double positive_fraction = 0;  // = accuracy
};
MarginSummary summarize_margins(const at::Tensor& m);

struct Histogram {
  std::vector<double> edges;    // bins + 1 edges
  std::vector<int64_t> counts;  // values outside [lo, hi] go to the end bins
};
Histogram histogram(const at::Tensor& values, double lo, double hi, int64_t bins);

struct NoiseCurve {
  std::vector<double> stds, mean, std;  // accuracy (fraction) over the trials per noise std
};
// For each std: `trials` times, adds N(0, std²) to every tensor of `params` (in place, no
// grad), calls accuracy(), restores the parameters exactly. Draws come from a generator
// seeded with `seed`, so both arms of a comparison see the same noise directions.
NoiseCurve accuracy_under_noise(const std::vector<at::Tensor>& params,
                                const std::function<double()>& accuracy,
                                const std::vector<double>& stds, int64_t trials, uint64_t seed);

// The noise std at which the mean accuracy first falls below `level` (linear interpolation
// between grid points); the largest std of the grid when it never does, 0 when already the
// first point is below.
double noise_tolerance(const NoiseCurve& curve, double level);

}  // namespace normexp::analysis
