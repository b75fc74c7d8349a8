#pragma once
// What a run is made of, and the interface through which the layers below the composition
// root (lib/compose) obtain components without knowing the registry: the trainer, the tasks
// and the benchmarks receive a ComponentFactory and never look a name up themselves.

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <c10/core/Device.h>

#include "config/experiment.h"
#include "data/dataset.h"
#include "models/model.h"
#include "nn/norm_scheme.h"
#include "nn/params.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"

namespace normexp::train {

// Every component of a classification experiment, built without loading data.
struct Components {
  std::unique_ptr<data::Dataset> dataset;
  std::unique_ptr<nn::NormScheme> scheme;
  models::ModelPtr model;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LrSchedule> schedule;
  double lr = 0;  // after the linear scaling rule, when enabled
  int64_t steps_per_epoch = 0;
  int64_t num_parameters = 0;
};

// Wraps the configured norm scheme before the model asks it for layers (e.g. a scheme that
// records statistics at every norm position, analysis::ProbedScheme).
using SchemeDecorator =
    std::function<std::unique_ptr<nn::NormScheme>(std::unique_ptr<nn::NormScheme>)>;

// Makes components from the config sections that select them (`name:` plus options).
class ComponentFactory {
 public:
  virtual ~ComponentFactory() = default;

  virtual std::unique_ptr<data::Dataset> dataset(const config::Params& data) const = 0;
  virtual std::unique_ptr<nn::NormScheme> norm(const config::Params& norm) const = 0;
  virtual models::ModelPtr model(const config::Params& model, const data::DataShape& shape,
                                 nn::NormScheme& scheme) const = 0;
  virtual std::unique_ptr<optim::Optimizer> optimizer(const config::Params& optim,
                                                       std::vector<nn::ParamInfo> params) const = 0;
  virtual std::unique_ptr<optim::LrSchedule> schedule(const config::Params& schedule,
                                                      const optim::ScheduleContext& ctx) const = 0;

  // All of a classification experiment on `device` (the model is moved there before the
  // optimizer takes its parameters). Component-level problems (noise sigma without a
  // schedule, a width giving no channels, a batch larger than the data) surface as one
  // ConfigError listing every issue.
  Components build(const config::Experiment& exp, const c10::Device& device,
                   const SchemeDecorator& decorate = {}) const;
};

}  // namespace normexp::train
