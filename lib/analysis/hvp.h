#pragma once
// Curvature of a loss at the current parameters: Hessian-vector products by double backward
// (Pearlmutter 1994), the top eigenvalue by power iteration, the spectrum by Lanczos with
// full reorthogonalization, and a condition number that leaves out the zero modes which
// normalization symmetries create (Akbar §6: "a few small positive eigenvalues and many
// zeros (due to invariances)"). Everything works in the parameters' dtype; the geometry
// experiments use float64 so that products are exact to ~1e-12.

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace normexp::analysis {

// Computes the scalar loss from the current values of the parameters (which require grad).
using LossFn = std::function<at::Tensor()>;
// A symmetric linear operator on flat vectors.
using LinearOp = std::function<at::Tensor(const at::Tensor&)>;

// Concatenates the flattened tensors (detached).
at::Tensor flatten(const std::vector<at::Tensor>& tensors);
// Splits a flat vector into views shaped like `like`.
std::vector<at::Tensor> unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& like);

// The Hessian of loss() w.r.t. `params` at their current values. The gradient graph is
// built once (create_graph); each product H v is one backward pass through g·v.
class HessianOperator {
 public:
  HessianOperator(const LossFn& loss, std::vector<at::Tensor> params);
  int64_t dim() const { return n_; }
  double loss() const { return loss_; }
  at::Tensor gradient() const;                  // flat, detached
  at::Tensor apply(const at::Tensor& v) const;  // H v (flat, detached)
  LinearOp op() const {
    return [this](const at::Tensor& v) { return apply(v); };
  }
  // All n products: the dense Hessian, symmetrized (small models only).
  at::Tensor dense() const;

 private:
  std::vector<at::Tensor> params_, grads_;
  int64_t n_ = 0;
  double loss_ = 0;
};

struct PowerResult {
  double eigenvalue = 0;  // Rayleigh quotient of the last iterate
  at::Tensor vector;
  int64_t iterations = 0;
  bool converged = false;
};
// The eigenvalue of largest magnitude, from start vector v0; stops when the Rayleigh
// quotient changes by less than tol (relative).
PowerResult power_iteration(const LinearOp& op, at::Tensor v0, int64_t max_iters = 200,
                            double tol = 1e-8);

// k Lanczos steps from v0 with full reorthogonalization (every new vector is orthogonalized
// against all previous ones twice, so no spurious copies of converged eigenvalues appear).
// Returns the Ritz values in ascending order; with k = dim they are the whole spectrum. Stops
// early (fewer values) when the Krylov space is exhausted.
std::vector<double> lanczos(const LinearOp& op, at::Tensor v0, int64_t k);

// Summary of a spectrum. Eigenvalues with |λ| <= rel_threshold * λ_max are zero modes
// (symmetry directions, plus what float rounding and BN's eps leave of them); the condition
// number is λ_max over the smallest positive eigenvalue above that threshold. Negative
// eigenvalues above the threshold (saddle directions) are counted and left out as well.
struct SpectrumSummary {
  double lambda_max = 0;
  double lambda_min_nonzero = 0;  // smallest positive eigenvalue above the threshold
  double lambda_min = 0;          // the most negative (or smallest) eigenvalue
  double condition = 0;
  double threshold = 0;  // absolute: rel_threshold * lambda_max
  int64_t zero_modes = 0, negative = 0, total = 0;
};
// Default relative threshold: 1e-4 of λ_max. Symmetry modes of a float64 BN network sit at
// ~eps/σ² of the curvature scale (BN's eps = 1e-5 breaks scale invariance only that much).
constexpr double kZeroModeThreshold = 1e-4;
SpectrumSummary summarize_spectrum(std::vector<double> eigenvalues,
                                   double rel_threshold = kZeroModeThreshold);

}  // namespace normexp::analysis
