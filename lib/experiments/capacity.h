#pragma once
// Than 2025 (exponential capacity control): train a registered model (data, model,
// norm, optim, schedule sections, as `classify` reads them) and monitor per epoch
//   - the product of the layers' operator norms ∏‖W_i‖ (convs on their real input shape),
//   - the input σ_k of every normalization layer (of the places a norm would be, for `none`)
//     and ∏ 1/σ_k, both as log10,
//   - train error (eval mode, no augmentation), test error and the generalization gap.
// history.jsonl holds one row per epoch (epoch 0 = at initialization), so `normexp plot`
// draws these series from a figure spec; sigma.dat has every layer's σ_k per epoch.

#include <vector>

#include "config/experiment.h"
#include "config/schema.h"
#include "experiments/task.h"

namespace normexp::experiments {

std::vector<config::OptionSpec> capacity_options();
TaskResult capacity(TaskContext& ctx);
void check_capacity(const config::Experiment& exp, const train::ComponentFactory& components);

}  // namespace normexp::experiments
