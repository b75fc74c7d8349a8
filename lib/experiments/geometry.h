#pragma once
// The synthetic experiments of Akbar (§8 Experiments 1-4) and the symmetry table
// (Table 1, §4), as tasks. Each is a tiny float64 full-batch gradient-descent experiment
// with its own hand-built model (exact reproductions of the synthetic setups, no data or
// model sections) that trains the same problem with and without BN in one run, so the
// comparison shares data and initial weights; results hold both arms ("bn", "plain").

#include <vector>

#include "config/schema.h"
#include "experiments/task.h"

namespace normexp::experiments {

// Experiment 1: 2-D separable data, linear classifier ± BN, several initial norms/angles.
std::vector<config::OptionSpec> gd_linear_options();
TaskResult gd_linear(TaskContext& ctx);

// Experiment 2: MLP of width 10 on a regression task ± BN (no biases before BN), same LR:
// iterations to converge, Hessian spectrum at the end (λ_max, condition number).
std::vector<config::OptionSpec> hessian_mlp_options();
TaskResult hessian_mlp(TaskContext& ctx);

// Experiment 3: 50-D binary task, MLP 50-20-1 ReLU ± BN to zero training error: accuracy,
// margins f(x)·y and their histogram, training accuracy under parameter noise.
std::vector<config::OptionSpec> margin_mlp_options();
TaskResult margin_mlp(TaskContext& ctx);

// Experiment 4: 5-layer ReLU net from very small / very large initial weights ± BN.
std::vector<config::OptionSpec> bad_init_options();
TaskResult bad_init(TaskContext& ctx);

// Table 1: the BN, LN and WN symmetries as loss-invariance checks, and a plain model on
// which the same transformations must change the loss.
std::vector<config::OptionSpec> symmetry_options();
TaskResult symmetry(TaskContext& ctx);

}  // namespace normexp::experiments
