#include "experiments/dense_net.h"

#include <torch/torch.h>

#include <cmath>

namespace normexp::experiments::dense {

c10::TensorOptions f64() {
  return torch::TensorOptions().dtype(torch::kDouble);
}

torch::Tensor randn(at::Generator& gen, std::vector<int64_t> shape) {
  return torch::randn(shape, gen, f64());
}

// One full-batch gradient-descent step; gradients are zeroed for the next one.
void gd_step(const std::vector<torch::Tensor>& params, double lr) {
  torch::NoGradGuard no_grad;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    p.sub_(lr * p.grad());
    p.grad().zero_();
  }
}

torch::Tensor logistic_loss(const torch::Tensor& f, const torch::Tensor& y) {
  return torch::nn::functional::softplus(-y * f).mean();
}

double accuracy_pm1(const torch::Tensor& f, const torch::Tensor& y) {
  return (f.detach() * y).gt(0).to(torch::kDouble).mean().item<double>();
}

bool finite(double v) {
  return std::isfinite(v);
}

nlohmann::json nullable(std::optional<double> v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
nlohmann::json nullable(std::optional<int64_t> v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

at::Tensor DenseNet::weight(size_t l) const {
  if (norm != Norm::Wn) return w[l];
  return g[l].unsqueeze(1) * w[l] / w[l].norm(2, {1}, /*keepdim=*/true);
}

at::Tensor DenseNet::forward(const at::Tensor& x, bool train) {
  auto h = x;
  for (size_t l = 0; l < layers(); ++l) {
    auto z = h.matmul(weight(l).t());
    if (b[l].defined()) z = z + b[l];
    if (l + 1 == layers()) return z;
    if (norm == Norm::Bn) {
      torch::Tensor mu, v;
      if (train) {
        mu = z.mean(0);
        v = z.var(0, /*unbiased=*/false);
        mean[l] = mu.detach();
        var[l] = v.detach();
      } else {
        mu = mean[l];
        v = var[l];
      }
      z = (z - mu) / torch::sqrt(v + eps) * gamma[l] + beta[l];
    } else if (norm == Norm::Ln) {
      auto mu = z.mean(1, true);
      auto v = z.var(1, /*unbiased=*/false, /*keepdim=*/true);
      z = (z - mu) / torch::sqrt(v + eps) * gamma[l] + beta[l];
    }
    h = torch::relu(z);
  }
  return h;
}

at::Tensor DenseNet::out1(const at::Tensor& x, bool train) { return forward(x, train).reshape({-1}); }

std::vector<at::Tensor> DenseNet::params() const {
  std::vector<at::Tensor> out;
  for (const auto* list : {&w, &b, &gamma, &beta, &g})
    for (const auto& t : *list)
      if (t.defined()) out.push_back(t);
  return out;
}

// He-normal weights (std sqrt(2/fan_in); the linear output layer sqrt(1/fan_in)) times
// `scale`, zero biases, γ = 1, β = 0. Hidden layers of BN/LN nets have a bias only with
// `bias_before_norm` (Akbar Exp. 2: "no biases in those layers").
DenseNet make_dense(const std::vector<int64_t>& sizes, Norm norm, bool bias_before_norm,
                    double scale, double eps, at::Generator& gen) {
  DenseNet net;
  net.norm = norm;
  net.eps = eps;
  const size_t L = sizes.size() - 1;
  for (size_t l = 0; l < L; ++l) {
    const bool hidden = l + 1 < L;
    const int64_t in = sizes[l], out = sizes[l + 1];
    const double std = scale * std::sqrt((hidden ? 2.0 : 1.0) / static_cast<double>(in));
    net.w.push_back((randn(gen, {out, in}) * std).requires_grad_());
    const bool normed = hidden && (norm == Norm::Bn || norm == Norm::Ln);
    net.b.push_back(normed && !bias_before_norm ? torch::Tensor()
                                                : torch::zeros({out}, f64()).requires_grad_());
    net.gamma.push_back(normed ? torch::ones({out}, f64()).requires_grad_() : torch::Tensor());
    net.beta.push_back(normed ? torch::zeros({out}, f64()).requires_grad_() : torch::Tensor());
    net.g.push_back(norm == Norm::Wn ? net.w.back().detach().norm(2, {1}).requires_grad_()
                                     : torch::Tensor());
    net.mean.emplace_back();
    net.var.emplace_back();
  }
  return net;
}

// Targets of a random one-hidden-layer teacher (so that a linear model cannot fit them).
torch::Tensor teacher(const torch::Tensor& x, int64_t hidden, bool relu, at::Generator& gen) {
  const int64_t d = x.size(1);
  auto u = randn(gen, {hidden, d}) / std::sqrt(static_cast<double>(d));
  auto a = randn(gen, {hidden});
  auto h = x.matmul(u.t());
  h = relu ? torch::relu(h) : torch::tanh(h);
  return h.matmul(a);
}

// Binary labels in {-1, +1}: the teacher's output thresholded at its median (balanced).
torch::Tensor teacher_labels(const torch::Tensor& x, int64_t hidden, at::Generator& gen) {
  auto t = teacher(x, hidden, /*relu=*/true, gen);
  return torch::where(t > t.median(), torch::ones_like(t), -torch::ones_like(t));
}

}  // namespace normexp::experiments::dense
