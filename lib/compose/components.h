#pragma once
// The registry's tables behind train::ComponentFactory: what the composition root hands to
// tasks, benchmarks and tools so that they build components from config sections without
// knowing where the names are resolved.

#include <c10/core/Device.h>

#include "config/experiment.h"
#include "train/components.h"

namespace normexp::compose {

class RegistryComponents final : public train::ComponentFactory {
 public:
  std::unique_ptr<data::Dataset> dataset(const config::Params& data) const override;
  std::unique_ptr<nn::NormScheme> norm(const config::Params& norm) const override;
  models::ModelPtr model(const config::Params& model, const data::DataShape& shape,
                         nn::NormScheme& scheme) const override;
  std::unique_ptr<optim::Optimizer> optimizer(const config::Params& optim,
                                              std::vector<nn::ParamInfo> params) const override;
  std::unique_ptr<optim::LrSchedule> schedule(const config::Params& schedule,
                                              const optim::ScheduleContext& ctx) const override;
};

// The one factory of the built-in components.
const train::ComponentFactory& components();

// Every component of a classification experiment (components().build).
train::Components build(const config::Experiment& exp, const c10::Device& device,
                        const train::SchemeDecorator& decorate = {});

}  // namespace normexp::compose
