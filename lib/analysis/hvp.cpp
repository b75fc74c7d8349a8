#include "analysis/hvp.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace normexp::analysis {

at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}));
  return torch::cat(flat);
}

std::vector<at::Tensor> unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& like) {
  std::vector<at::Tensor> out;
  int64_t offset = 0;
  for (const auto& t : like) {
    out.push_back(flat.slice(0, offset, offset + t.numel()).view(t.sizes()));
    offset += t.numel();
  }
  return out;
}

HessianOperator::HessianOperator(const LossFn& loss, std::vector<at::Tensor> params)
    : params_(std::move(params)) {
  for (const auto& p : params_) n_ += p.numel();
  auto l = loss();
  loss_ = l.item<double>();
  grads_ = torch::autograd::grad({l}, params_, {}, /*retain_graph=*/true, /*create_graph=*/true,
                                 /*allow_unused=*/true);
  // A parameter the loss does not use has a zero gradient and a zero Hessian block.
  for (size_t i = 0; i < grads_.size(); ++i)
    if (!grads_[i].defined()) grads_[i] = torch::zeros_like(params_[i]);
}

at::Tensor HessianOperator::gradient() const {
  return flatten(grads_);
}

at::Tensor HessianOperator::apply(const at::Tensor& v) const {
  if (v.numel() != n_) throw std::invalid_argument("HessianOperator: vector of the wrong size");
  const std::vector<at::Tensor> vs = unflatten(v.to(params_[0].options()), params_);
  std::vector<at::Tensor> outs, grad_outputs;
  for (size_t i = 0; i < grads_.size(); ++i) {
    if (!grads_[i].requires_grad()) continue;  // constant gradient: zero curvature
    outs.push_back(grads_[i]);
    grad_outputs.push_back(vs[i]);
  }
  std::vector<at::Tensor> hv(params_.size());
  if (!outs.empty()) {
    // d/dθ (g(θ)·v) = H v, the double backward.
    hv = torch::autograd::grad(outs, params_, grad_outputs, /*retain_graph=*/true,
                               /*create_graph=*/false, /*allow_unused=*/true);
  }
  for (size_t i = 0; i < hv.size(); ++i)
    if (!hv[i].defined()) hv[i] = torch::zeros_like(params_[i]);
  return flatten(hv);
}

at::Tensor HessianOperator::dense() const {
  auto h = torch::empty({n_, n_}, params_[0].options());
  auto e = torch::zeros({n_}, params_[0].options());
  for (int64_t i = 0; i < n_; ++i) {
    e.zero_();
    e[i] = 1;
    h.select(1, i).copy_(apply(e));
  }
  return (h + h.t()) / 2;
}

PowerResult power_iteration(const LinearOp& op, at::Tensor v0, int64_t max_iters, double tol) {
  PowerResult r;
  auto v = v0 / v0.norm();
  double prev = 0;
  for (int64_t it = 1; it <= max_iters; ++it) {
    auto w = op(v);
    const double lambda = torch::dot(v, w).item<double>();
    const double norm = w.norm().item<double>();
    r.iterations = it;
    r.eigenvalue = lambda;
    r.vector = v;
    if (norm == 0) {  // v is in the null space: the operator is zero there
      r.converged = true;
      break;
    }
    v = w / norm;
    if (it > 1 && std::abs(lambda - prev) <= tol * std::max(std::abs(lambda), 1e-300)) {
      r.converged = true;
      r.vector = v;
      break;
    }
    prev = lambda;
  }
  return r;
}

std::vector<double> lanczos(const LinearOp& op, at::Tensor v0, int64_t k) {
  k = std::min<int64_t>(k, v0.numel());
  std::vector<at::Tensor> basis;
  std::vector<double> alpha, beta;
  auto q = v0 / v0.norm();
  for (int64_t j = 0; j < k; ++j) {
    basis.push_back(q);
    auto w = op(q);
    const double a = torch::dot(q, w).item<double>();
    alpha.push_back(a);
    // Full reorthogonalization, twice ("twice is enough", Parlett): the three-term recurrence
    // alone loses orthogonality as soon as a Ritz value converges.
    auto Q = torch::stack(basis, 1);  // (n, j+1)
    for (int pass = 0; pass < 2; ++pass) w = w - Q.mv(Q.t().mv(w));
    const double b = w.norm().item<double>();
    if (j + 1 == k) break;
    // An invariant subspace: the Ritz values are exact eigenvalues of the operator there.
    if (b <= 1e-12 * std::max(1.0, std::abs(a))) break;
    beta.push_back(b);
    q = w / b;
  }
  const int64_t m = static_cast<int64_t>(alpha.size());
  auto T = torch::zeros({m, m}, torch::kDouble);
  for (int64_t i = 0; i < m; ++i) {
    T[i][i] = alpha[i];
    if (i + 1 < m) {
      T[i][i + 1] = beta[i];
      T[i + 1][i] = beta[i];
    }
  }
  auto eig = at::linalg_eigvalsh(T, "L");
  std::vector<double> out(eig.data_ptr<double>(), eig.data_ptr<double>() + m);
  std::sort(out.begin(), out.end());
  return out;
}

SpectrumSummary summarize_spectrum(std::vector<double> eigs, double rel_threshold) {
  SpectrumSummary s;
  s.total = static_cast<int64_t>(eigs.size());
  if (eigs.empty()) return s;
  std::sort(eigs.begin(), eigs.end());
  s.lambda_max = eigs.back();
  s.lambda_min = eigs.front();
  s.threshold = rel_threshold * std::abs(s.lambda_max);
  double smallest = 0;
  for (double e : eigs) {
    if (std::abs(e) <= s.threshold) {
      ++s.zero_modes;
    } else if (e < 0) {
      ++s.negative;
    } else if (smallest == 0 || e < smallest) {
      smallest = e;
    }
  }
  s.lambda_min_nonzero = smallest;
  s.condition = smallest > 0 ? s.lambda_max / smallest : 0;
  return s;
}

}  // namespace normexp::analysis
