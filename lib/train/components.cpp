#include "train/components.h"

#include <torch/torch.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "train/pipeline.h"

namespace normexp::train {

Components ComponentFactory::build(const config::Experiment& exp, const c10::Device& device,
                                   const SchemeDecorator& decorate) const {
  IssueCollector collect;
  const config::Params& data_p = exp.section("data");
  const config::Params& optim_p = exp.section("optim");
  const config::Params& train_p = exp.section("train");

  Components c;
  collect([&] { c.dataset = dataset(data_p); });
  collect([&] {
    c.scheme = norm(exp.section("norm"));
    if (decorate) c.scheme = decorate(std::move(c.scheme));
  });
  collect([&] { pipeline_from_config(data_p); });  // an unreadable data.policy
  if (c.dataset && c.scheme)
    collect([&] { c.model = model(exp.section("model"), c.dataset->shape(), *c.scheme); });
  if (c.dataset) {
    const int64_t n = c.dataset->train_size(), batch = train_p.get_int("batch_size");
    c.steps_per_epoch = train_p.get_bool("drop_last") ? n / batch : (n + batch - 1) / batch;
    if (c.steps_per_epoch == 0)
      collect.add({train_p.where("batch_size"), "train.batch_size",
                   fmt::format("{} is larger than the training set ({} images) with "
                               "train.drop_last: no step per epoch",
                               batch, n)});
  }
  c.lr = optim::scaled_lr(optim_p, train_p.get_int("batch_size"));
  collect([&] {
    optim::ScheduleContext ctx{c.lr, std::max<int64_t>(1, c.steps_per_epoch),
                               train_p.get_int("epochs")};
    c.schedule = schedule(exp.section("schedule"), ctx);
  });
  if (c.model) {
    c.model->to(device);
    auto params = nn::classify_parameters(*c.model);
    for (const auto& p : params) c.num_parameters += p.tensor.numel();
    collect([&] { c.optimizer = optimizer(optim_p, params); });
  }
  collect.throw_if_any();
  return c;
}

}  // namespace normexp::train
