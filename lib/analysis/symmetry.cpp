#include "analysis/symmetry.h"

#include <torch/torch.h>

#include <cmath>

namespace normexp::analysis {

SymmetryCheck check_symmetry(const std::string& name, const LossFn& loss,
                             const std::vector<at::Tensor>& params,
                             const std::function<void()>& transform, double tolerance) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> saved;
  for (const auto& p : params) saved.push_back(p.detach().clone());
  SymmetryCheck r;
  r.name = name;
  r.tolerance = tolerance;
  r.loss_before = loss().item<double>();
  transform();
  r.loss_after = loss().item<double>();
  for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(saved[i]);
  r.rel_change = std::abs(r.loss_after - r.loss_before) / std::max(std::abs(r.loss_before), 1e-300);
  r.invariant = r.rel_change <= tolerance;
  return r;
}

void scale_neuron_(const at::Tensor& w, const at::Tensor& b, int64_t i, double c) {
  torch::NoGradGuard no_grad;
  w.detach()[i].mul_(c);
  if (b.defined()) b.detach()[i].mul_(c);
}

void scale_layer_(const at::Tensor& w, const at::Tensor& b, double c) {
  torch::NoGradGuard no_grad;
  w.detach().mul_(c);
  if (b.defined()) b.detach().mul_(c);
}

void scale_wn_table1_(const at::Tensor& v, const at::Tensor& g, int64_t i, double alpha) {
  torch::NoGradGuard no_grad;
  v.detach()[i].mul_(alpha);
  g.detach()[i].div_(alpha);
}

void scale_wn_direction_(const at::Tensor& v, int64_t i, double alpha) {
  torch::NoGradGuard no_grad;
  v.detach()[i].mul_(alpha);
}

}  // namespace normexp::analysis
