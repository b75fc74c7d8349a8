#pragma once
// The default task: image classification with train::Trainer. Every conv, norm and classifier
// is wrapped in a train::Watch (train.monitor_every, divergence reports).

#include "config/experiment.h"
#include "experiments/task.h"

namespace normexp::experiments {

TaskStatus classify(TaskContext& ctx);
void check_classify(const config::Experiment& exp, const train::ComponentFactory& components);

}  // namespace normexp::experiments
