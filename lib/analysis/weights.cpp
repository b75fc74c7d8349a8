#include "analysis/weights.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace normexp::analysis {

void WeightTracker::add(std::string name, at::Tensor t, bool trajectory) {
  entries_.push_back({std::move(name), std::move(t), trajectory, {}, {}});
}

void WeightTracker::record(int64_t step) {
  torch::NoGradGuard no_grad;
  steps_.push_back(step);
  for (auto& e : entries_) {
    auto d = e.tensor.detach().to(torch::kDouble).cpu().contiguous();
    e.norms.push_back(d.norm().item<double>());
    if (e.trajectory) e.values.emplace_back(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
}

const WeightTracker::Entry& WeightTracker::entry(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return e;
  throw std::out_of_range("WeightTracker: no tensor named " + name);
}

const std::vector<double>& WeightTracker::norms(const std::string& name) const {
  return entry(name).norms;
}

double WeightTracker::max_relative_change(const std::string& name) const {
  const auto& n = entry(name).norms;
  double m = 0;
  for (double v : n) m = std::max(m, std::abs(v - n.front()) / n.front());
  return m;
}

std::string WeightTracker::norms_table() const {
  std::string out = "# step";
  for (const auto& e : entries_) out += " " + e.name;
  out += "\n";
  for (size_t r = 0; r < steps_.size(); ++r) {
    out += std::to_string(steps_[r]);
    for (const auto& e : entries_) out += fmt::format(" {:.9g}", e.norms[r]);
    out += "\n";
  }
  return out;
}

std::string WeightTracker::trajectory_table(const std::string& name) const {
  const auto& e = entry(name);
  std::string out = "# step";
  for (size_t i = 0; i < (e.values.empty() ? 0 : e.values[0].size()); ++i)
    out += fmt::format(" {}[{}]", name, i);
  out += " norm\n";
  for (size_t r = 0; r < e.values.size(); ++r) {
    out += std::to_string(steps_[r]);
    for (double v : e.values[r]) out += fmt::format(" {:.9g}", v);
    out += fmt::format(" {:.9g}\n", e.norms[r]);
  }
  return out;
}

}  // namespace normexp::analysis
