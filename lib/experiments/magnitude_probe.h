#pragma once
// Markou §5.2: the magnitude-ranking probe and the attention entropy of the trained probe
// model.
//
// The task (our design; the paper gives only its name and purpose): a sequence of T tokens
// in R^d, token t = r_t * u_t with u_t uniform on the unit sphere and r_t log-uniform in
// [min_magnitude, max_magnitude], all independent. The label is the index of the token with
// the largest magnitude, so it depends on the magnitudes only (rotating, flipping or
// re-drawing the directions never changes it) and chance is 1/T. The model scores every
// token (transformer encoder, no position embedding, task/probe norms from the `norm`
// section) and is trained with cross-entropy over the T scores.
//
// Attention entropy: for every test sequence, layer, head and query the entropy (nats) of
// its attention distribution over the T keys; reported as mean and std over all of them
// (and per layer). Uniform attention has entropy ln T.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "config/schema.h"
#include "experiments/task.h"

namespace normexp::experiments {

struct ProbeData {
  at::Tensor tokens;  // (N, T, d) float
  at::Tensor labels;  // (N) int64: argmax_t ||tokens[n, t]||
  at::Tensor magnitudes;  // (N, T)
};

// Deterministic in `seed` (its own CPU generator; the run seed does not change the data).
ProbeData make_probe_data(int64_t n, int64_t tokens, int64_t dim, double min_magnitude,
                          double max_magnitude, uint64_t seed);

// Entropy in nats of each attention row: p (…, T) -> (…).
at::Tensor attention_entropy(const at::Tensor& p);

std::vector<config::OptionSpec> probe_options();
TaskResult run_probe(TaskContext& ctx);
void check_probe(const config::Experiment& exp, const train::ComponentFactory& components);

}  // namespace normexp::experiments
