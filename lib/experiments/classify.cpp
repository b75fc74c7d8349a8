#include "experiments/classify.h"

#include <torch/torch.h>

#include <spdlog/spdlog.h>

#include "train/monitor.h"
#include "train/trainer.h"

namespace normexp::experiments {

TaskStatus classify(TaskContext& ctx) {
  train::MonitoredScheme* monitored = nullptr;
  const bool sync_bn = ctx.data_parallel && ctx.exp.section("train").get_bool("sync_bn");
  train::Components parts =
      ctx.components.build(ctx.exp, ctx.device, [&](std::unique_ptr<nn::NormScheme> scheme) {
        if (sync_bn)
          scheme = train::sync_batch_norm(ctx.data_parallel->shared_group())(std::move(scheme));
        auto m = std::make_unique<train::MonitoredScheme>(std::move(scheme));
        monitored = m.get();
        return m;
      });
  data::ImageData data = parts.dataset->load();  // a data problem leaves nothing behind
  ctx.run.claim();
  auto watches = monitored ? monitored->watches() : std::vector<train::Watch>{};
  train::Trainer trainer(ctx.exp, std::move(parts), std::move(watches), ctx.device,
                         std::move(data), ctx.run, ctx.stop_predicate(), ctx.data_parallel);
  if (!trainer.restore() && ctx.run.reopened())
    spdlog::info("{} has no checkpoint yet; starting the run from the beginning",
                 ctx.dir.string());
  return trainer.fit();
}

void check_classify(const config::Experiment& exp, const train::ComponentFactory& components) {
  components.build(exp, c10::Device(c10::kCPU));
}

}  // namespace normexp::experiments
