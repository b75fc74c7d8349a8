#pragma once
// Weight norms and trajectories over training (Akbar §5: under BN, gradient flow keeps
// each neuron's weight norm constant; §8 Experiment 1 plots w itself).

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::analysis {

class WeightTracker {
 public:
  // Tracks ‖t‖ (Frobenius) per record(); with `trajectory`, also every entry of t (small
  // tensors only: Experiment 1's w in R²).
  void add(std::string name, at::Tensor t, bool trajectory = false);
  void record(int64_t step);

  const std::vector<int64_t>& steps() const { return steps_; }
  const std::vector<double>& norms(const std::string& name) const;
  // max_t |‖w_t‖ - ‖w_0‖| / ‖w_0‖ over the records.
  double max_relative_change(const std::string& name) const;
  // Whitespace-separated table for gnuplot: "step <name>..." (norms), one row per record.
  std::string norms_table() const;
  // "step w0 w1 ... norm" for one tracked-with-trajectory tensor.
  std::string trajectory_table(const std::string& name) const;

 private:
  struct Entry {
    std::string name;
    at::Tensor tensor;
    bool trajectory;
    std::vector<double> norms;
    std::vector<std::vector<double>> values;
  };
  const Entry& entry(const std::string& name) const;
  std::vector<Entry> entries_;
  std::vector<int64_t> steps_;
};

}  // namespace normexp::analysis
