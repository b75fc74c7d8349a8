// Curvature tools: HVP against finite differences of the gradient, Lanczos and power
// iteration on a quadratic with a known spectrum, the zero-mode-aware condition number.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "analysis/hvp.h"

namespace normexp {
namespace {

using analysis::HessianOperator;

// A small nonlinear loss (tanh MLP, float64) with parameters that need the double backward.
struct TinyNet {
  torch::Tensor w1, w2, x, y;
  TinyNet() {
    torch::manual_seed(3);
    auto o = torch::TensorOptions().dtype(torch::kDouble);
    w1 = torch::randn({5, 4}, o).requires_grad_();
    w2 = torch::randn({1, 5}, o).requires_grad_();
    x = torch::randn({16, 4}, o);
    y = torch::randn({16, 1}, o);
  }
  torch::Tensor loss() const {
    return (torch::tanh(x.matmul(w1.t())).matmul(w2.t()) - y).pow(2).mean();
  }
  std::vector<torch::Tensor> params() const { return {w1, w2}; }
};

torch::Tensor flat_grad(const TinyNet& net) {
  auto g = torch::autograd::grad({net.loss()}, net.params());
  return analysis::flatten(g);
}

TEST(Hvp, AgreesWithFiniteDifferencesOfTheGradient) {
  TinyNet net;
  HessianOperator H([&] { return net.loss(); }, net.params());
  EXPECT_EQ(H.dim(), 25);
  auto v = torch::randn({H.dim()}, torch::kDouble);
  auto hv = H.apply(v);
  // The dense Hessian is symmetric and its columns are the products with basis vectors.
  auto dense = H.dense();
  EXPECT_TRUE(torch::allclose(dense.mv(v), hv, 1e-10, 1e-10));
  EXPECT_TRUE(torch::allclose(dense, dense.t()));
  // Central difference (g(θ + hv) - g(θ - hv)) / 2h: error O(h²).
  const double h = 1e-5;
  auto shift = [&](double s) {
    torch::NoGradGuard ng;
    auto parts = analysis::unflatten(v, net.params());
    net.w1.add_(parts[0], s);
    net.w2.add_(parts[1], s);
  };
  shift(h);
  auto gp = flat_grad(net);
  shift(-2 * h);
  auto gm = flat_grad(net);
  shift(h);
  auto fd = (gp - gm) / (2 * h);
  EXPECT_LT((hv - fd).norm().item<double>(), 1e-7 * std::max(1.0, hv.norm().item<double>()));
}

// 0.5 xᵀAx with A = Q diag(λ) Qᵀ: the Hessian is A everywhere.
struct Quadratic {
  torch::Tensor a, x;
  explicit Quadratic(const std::vector<double>& eigs) {
    torch::manual_seed(11);
    const int64_t n = static_cast<int64_t>(eigs.size());
    auto q = std::get<0>(at::linalg_qr(torch::randn({n, n}, torch::kDouble)));
    a = q.matmul(torch::diag(torch::tensor(eigs, torch::kDouble))).matmul(q.t());
    x = torch::randn({n}, torch::kDouble).requires_grad_();
  }
  torch::Tensor loss() const { return 0.5 * x.dot(a.mv(x)); }
};

TEST(Lanczos, FindsTheKnownSpectrumOfAQuadratic) {
  const std::vector<double> eigs{-0.5, 0.0, 0.0, 1e-3, 0.1, 0.7, 2.0, 3.5, 9.0, 40.0};
  Quadratic q(eigs);
  HessianOperator H([&] { return q.loss(); }, {q.x});
  auto ritz = analysis::lanczos(H.op(), torch::randn({10}, torch::kDouble), 10);
  // The double zero is one eigenvalue to a Krylov method (multiplicity is invisible): 9
  // distinct values, each found to near machine precision.
  ASSERT_GE(ritz.size(), 9u);
  for (double e : {-0.5, 1e-3, 0.1, 0.7, 2.0, 3.5, 9.0, 40.0}) {
    double best = 1e9;
    for (double r : ritz) best = std::min(best, std::abs(r - e));
    EXPECT_LT(best, 1e-9) << "eigenvalue " << e;
  }
  // A few steps already give the extremes (what Lanczos is for on large models).
  auto top = analysis::lanczos(H.op(), torch::randn({10}, torch::kDouble), 6);
  EXPECT_NEAR(top.back(), 40.0, 1e-3);
  auto power = analysis::power_iteration(H.op(), torch::randn({10}, torch::kDouble), 1000, 1e-13);
  EXPECT_NEAR(power.eigenvalue, 40.0, 1e-6);
}

TEST(Spectrum, ConditionNumberLeavesOutZeroAndNegativeModes) {
  const auto s = analysis::summarize_spectrum({-2.0, -1e-9, 0.0, 1e-7, 0.5, 5.0, 50.0}, 1e-4);
  EXPECT_DOUBLE_EQ(s.lambda_max, 50.0);
  EXPECT_DOUBLE_EQ(s.threshold, 5e-3);
  EXPECT_EQ(s.zero_modes, 3);  // -1e-9, 0, 1e-7
  EXPECT_EQ(s.negative, 1);
  EXPECT_DOUBLE_EQ(s.lambda_min_nonzero, 0.5);
  EXPECT_DOUBLE_EQ(s.condition, 100.0);
  EXPECT_DOUBLE_EQ(s.lambda_min, -2.0);
}

}  // namespace
}  // namespace normexp
