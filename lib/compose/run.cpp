#include "compose/run.h"

#include <torch/torch.h>

#include <spdlog/spdlog.h>

#include "backend/device.h"
#include "backend/torch_compat.h"
#include "compose/components.h"
#include "core/fs.h"
#include "experiments/task.h"
#include "registry/builtin.h"
#include "train/run_directory.h"
#include "train/signals.h"

namespace normexp::compose {

std::filesystem::path run_dir(const config::Experiment& exp) {
  return train::RunDirectory::path_for(exp);
}

void check_experiment(const config::Experiment& exp) {
  const auto& def = registry::tasks().get(exp.task()).make;
  if (def.check) def.check(exp, components());
}

RunResult run_experiment(const config::Experiment& exp, const RunOptions& options) {
  const auto& def = registry::tasks().get(exp.task()).make;
  const c10::Device device = backend::resolve_device(exp.section("train"));
  backend::configure_torch(exp.section("train"), exp.seed, device);
  {
    // Every config problem before the directory is looked at. The check builds models on the
    // CPU; it must not move the run's random stream: a run draws the same weights whether or
    // not it was checked first (and what it drew before the check existed).
    const at::Tensor rng = compat::cpu_rng_state();
    check_experiment(exp);
    compat::set_cpu_rng_state(rng);
  }

  train::RunDirectory dir(exp, options.resume);  // RunExistsError without --resume
  RunResult out;
  out.dir = dir.path();
  if (auto status = dir.finished()) {
    spdlog::info("{} is already {}; nothing to resume", dir.path().string(),
                 train::status_name(*status));
    out.status = *status;
    out.metrics = dir.previous();
    return out;
  }
  dir.set_device(backend::describe_device(device));

  train::SignalScope signals;
  const int64_t interrupt_at = options.interrupt_at_step;
  experiments::TaskContext ctx(exp, device, dir, components(), [interrupt_at](int64_t step) {
    return train::SignalScope::stop_requested() || (interrupt_at > 0 && step >= interrupt_at);
  });
  out.status = def.run(ctx);
  out.metrics = nlohmann::json::parse(read_file(dir.path() / "metrics.json"));
  return out;
}

}  // namespace normexp::compose
