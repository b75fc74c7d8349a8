#pragma once
// The normalization symmetries of Akbar Table 1 (§4) as numerical checks: apply the
// transformation to the parameters in place, compare the loss before and after, restore.
//   BN (per neuron i):  (W_i, b_i) -> (c W_i, c b_i)
//   LN (per layer):     (W, b)     -> (c W, c b)
//   WN (per vector):    w = g v/‖v‖; the table's (v, g) -> (αv, g/α) — see below.
// BN's invariance holds for batch statistics (training mode); with running statistics it
// does not. Both BN and LN are exact only up to their eps (var + eps under the root): the
// loss moves by about eps/σ² relative, so the checks use a tolerance, stated per check.
//
// Weight normalization: for w = g v/‖v‖ the loss is invariant under v -> αv with g fixed;
// the transformation printed in Table 1 and Proposition 4.3, (αv, g/α), gives
// w' = (g/α)(αv)/‖αv‖ = w/α — the proposition's algebra drops a factor α. It is the
// symmetry of the unnormalized product parameterization w = g v, not of WN. The geometry
// task checks both and reports which one holds.

#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "analysis/hvp.h"

namespace normexp::analysis {

struct SymmetryCheck {
  std::string name;
  double loss_before = 0, loss_after = 0;
  double rel_change = 0;  // |after - before| / max(|before|, tiny)
  double tolerance = 0;
  bool invariant = false;  // rel_change <= tolerance
};

// Evaluates loss(), runs transform() (which edits tensors of `params` in place), evaluates
// again, and restores `params` to their values before.
SymmetryCheck check_symmetry(const std::string& name, const LossFn& loss,
                             const std::vector<at::Tensor>& params,
                             const std::function<void()>& transform, double tolerance);

// The transformations (in place, no grad). `b` may be undefined (a layer without bias).
void scale_neuron_(const at::Tensor& w, const at::Tensor& b, int64_t i, double c);  // BN
void scale_layer_(const at::Tensor& w, const at::Tensor& b, double c);              // LN
// WN as printed in Table 1: v_i -> α v_i, g_i -> g_i / α.
void scale_wn_table1_(const at::Tensor& v, const at::Tensor& g, int64_t i, double alpha);
// WN's actual invariance: v_i -> α v_i, g_i unchanged.
void scale_wn_direction_(const at::Tensor& v, int64_t i, double alpha);

}  // namespace normexp::analysis
