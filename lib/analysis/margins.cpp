#include "analysis/margins.h"

#include <torch/torch.h>

#include <cmath>

#include "backend/torch_compat.h"

namespace normexp::analysis {

at::Tensor margins(const at::Tensor& outputs, const at::Tensor& labels_pm1) {
  return outputs.detach().reshape({-1}) * labels_pm1.to(outputs.scalar_type()).reshape({-1});
}

MarginSummary summarize_margins(const at::Tensor& m) {
  MarginSummary s;
  if (m.numel() == 0) return s;
  auto d = m.to(torch::kDouble);
  s.mean = d.mean().item<double>();
  s.median = d.median().item<double>();
  s.min = d.min().item<double>();
  s.max = d.max().item<double>();
  s.std = m.numel() > 1 ? d.std().item<double>() : 0.0;
  s.positive_fraction = d.gt(0).to(torch::kDouble).mean().item<double>();
  return s;
}

Histogram histogram(const at::Tensor& values, double lo, double hi, int64_t bins) {
  Histogram h;
  for (int64_t i = 0; i <= bins; ++i) h.edges.push_back(lo + (hi - lo) * i / bins);
  h.counts.assign(bins, 0);
  auto v = values.to(torch::kDouble).contiguous();
  const double* p = v.data_ptr<double>();
  for (int64_t i = 0; i < v.numel(); ++i) {
    auto b = static_cast<int64_t>(std::floor((p[i] - lo) / (hi - lo) * bins));
    h.counts[std::clamp<int64_t>(b, 0, bins - 1)]++;
  }
  return h;
}

NoiseCurve accuracy_under_noise(const std::vector<at::Tensor>& params,
                                const std::function<double()>& accuracy,
                                const std::vector<double>& stds, int64_t trials, uint64_t seed) {
  torch::NoGradGuard no_grad;
  NoiseCurve c;
  std::vector<torch::Tensor> saved;
  for (const auto& p : params) saved.push_back(p.detach().clone());
  auto gen = compat::cpu_generator(seed);
  for (double s : stds) {
    std::vector<double> acc;
    for (int64_t t = 0; t < (s == 0 ? 1 : trials); ++t) {
      for (size_t i = 0; i < params.size(); ++i) {
        auto noise = torch::randn(params[i].sizes(), gen, saved[i].options().device(torch::kCPU));
        params[i].detach().copy_(saved[i] + s * noise.to(saved[i].device()));
      }
      acc.push_back(accuracy());
    }
    for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(saved[i]);
    double mean = 0, var = 0;
    for (double a : acc) mean += a;
    mean /= acc.size();
    for (double a : acc) var += (a - mean) * (a - mean);
    c.stds.push_back(s);
    c.mean.push_back(mean);
    c.std.push_back(acc.size() > 1 ? std::sqrt(var / (acc.size() - 1)) : 0.0);
  }
  return c;
}

double noise_tolerance(const NoiseCurve& c, double level) {
  if (c.stds.empty()) return 0;
  if (c.mean[0] < level) return 0;
  for (size_t i = 1; i < c.stds.size(); ++i) {
    if (c.mean[i] < level) {
      const double t = (c.mean[i - 1] - level) / (c.mean[i - 1] - c.mean[i]);
      return c.stds[i - 1] + t * (c.stds[i] - c.stds[i - 1]);
    }
  }
  return c.stds.back();
}

}  // namespace normexp::analysis
