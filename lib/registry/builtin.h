#pragma once
// The component tables. Adding a component: write it in its layer, add one entry below in
// builtin.cpp. `normexp list` and config validation read these tables.

#include <functional>
#include <memory>
#include <vector>

#include "config/experiment.h"
#include "data/dataset.h"
#include "experiments/task.h"
#include "models/model.h"
#include "nn/norm_scheme.h"
#include "nn/params.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "registry/registry.h"

namespace normexp::registry {

using DatasetFactory = std::function<std::unique_ptr<data::Dataset>(const config::Params&)>;
using ModelFactory = std::function<models::ModelPtr(const config::Params&, const data::DataShape&,
                                                    nn::NormScheme&)>;
using NormFactory = std::function<std::unique_ptr<nn::NormScheme>(const config::Params&)>;
using OptimizerFactory = std::function<std::unique_ptr<optim::Optimizer>(
    const config::Params&, std::vector<nn::ParamInfo>)>;
using LrScheduleFactory = std::function<std::unique_ptr<optim::LrSchedule>(
    const config::Params&, const optim::ScheduleContext&)>;
using NoiseFactory = nn::NoiseSchedule;
using TaskFactory = experiments::TaskDef;

Registry<DatasetFactory>& datasets();
Registry<ModelFactory>& models();
Registry<NormFactory>& norms();
Registry<OptimizerFactory>& optimizers();
Registry<LrScheduleFactory>& lr_schedules();
Registry<NoiseFactory>& noise_schedules();
Registry<TaskFactory>& tasks();

// Options every entry of a section shares (data.augment, the whole train section, ...).
std::vector<config::OptionSpec> data_common_options();
std::vector<config::OptionSpec> train_options();
std::vector<config::OptionSpec> output_options();

// The experiment schema assembled from the tables.
const config::Schema& experiment_schema();

}  // namespace normexp::registry
