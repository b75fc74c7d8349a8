#include "compose/components.h"

#include <torch/torch.h>

#include "registry/builtin.h"

namespace normexp::compose {

std::unique_ptr<data::Dataset> RegistryComponents::dataset(const config::Params& data) const {
  return registry::datasets().get(data.get_string("name")).make(data);
}

std::unique_ptr<nn::NormScheme> RegistryComponents::norm(const config::Params& norm) const {
  return registry::norms().get(norm.get_string("name")).make(norm);
}

models::ModelPtr RegistryComponents::model(const config::Params& model,
                                           const data::DataShape& shape,
                                           nn::NormScheme& scheme) const {
  auto m = registry::models().get(model.get_string("name")).make(model, shape, scheme);
  scheme.finalize(*m);  // e.g. cwo's per-layer noise levels, which need the layer count
  return m;
}

std::unique_ptr<optim::Optimizer> RegistryComponents::optimizer(
    const config::Params& optim, std::vector<nn::ParamInfo> params) const {
  return registry::optimizers().get(optim.get_string("name")).make(optim, std::move(params));
}

std::unique_ptr<optim::LrSchedule> RegistryComponents::schedule(
    const config::Params& schedule, const optim::ScheduleContext& ctx) const {
  return registry::lr_schedules().get(schedule.get_string("name")).make(schedule, ctx);
}

const train::ComponentFactory& components() {
  static const RegistryComponents factory;
  return factory;
}

train::Components build(const config::Experiment& exp, const c10::Device& device,
                        const train::SchemeDecorator& decorate) {
  return components().build(exp, device, decorate);
}

}  // namespace normexp::compose
