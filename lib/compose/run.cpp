#include "compose/run.h"

#include <torch/torch.h>

#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/device.h"
#include "backend/launch.h"
#include "backend/process_group.h"
#include "backend/torch_compat.h"
#include "compose/components.h"
#include "core/fs.h"
#include "experiments/task.h"
#include "registry/builtin.h"
#include "train/data_parallel.h"
#include "train/run_directory.h"
#include "train/signals.h"

namespace normexp::compose {

std::filesystem::path run_dir(const config::Experiment& exp) {
  return train::RunDirectory::path_for(exp);
}

void check_experiment(const config::Experiment& exp) {
  const auto& def = registry::tasks().get(exp.task()).make;
  IssueCollector issues;
  issues([&] { experiments::check_step_extras(exp, def); });
  if (def.check) issues([&] { def.check(exp, components()); });
  issues.throw_if_any();
}

namespace {

// The launch must be the one the config was written for (train.world_size is in the hash).
void check_launch(const config::Experiment& exp, const backend::Launch& launch) {
  const config::Params& train = exp.section("train");
  const int64_t world = train.get_int("world_size");
  if (world != launch.world_size) {
    const std::string how =
        world == 1 ? "run it as a single process (without torchrun or srun)"
                   : fmt::format("launch it with {} processes: torchrun --no-python "
                                 "--nproc-per-node={} normexp run ..., or srun -n {} normexp run ...",
                                 world, world, world);
    throw ConfigError(train.where("world_size"), "train.world_size",
                      fmt::format("the config asks for {} rank(s) but normexp was started as "
                                  "{} ({}); {}",
                                  world, launch.world_size == 1 ? "a single process"
                                                                : fmt::format("rank {} of {}", launch.rank, launch.world_size),
                                  launch.launcher, how));
  }
  if (launch.distributed() && exp.task() != "classify")
    throw ConfigError(train.where("world_size"), "train.world_size",
                      fmt::format("task {} runs in one process only; data-parallel runs are "
                                  "classification runs",
                                  exp.task()));
}

// Ranks other than 0 speak only when something is wrong, under their rank's name.
void quiet_follower(int rank) {
  spdlog::set_level(spdlog::level::warn);
  spdlog::set_pattern(fmt::format("[rank {}] [%l] %v", rank));
}

// Rank 0 judges the directory (new, reopened, finished, refused) and tells the others, so that
// every rank takes the same path; one that throws tells them to stop as well.
enum class Verdict : int64_t { Go = 0, Completed = 1, Diverged = 2, Refused = 3 };

Verdict agree(const train::DataParallel& dp, Verdict mine) {
  at::Tensor t = torch::tensor(static_cast<int64_t>(mine));
  dp.broadcast(t);
  return static_cast<Verdict>(t.item<int64_t>());
}

}  // namespace

RunResult run_experiment(const config::Experiment& exp, const RunOptions& options) {
  const auto& def = registry::tasks().get(exp.task()).make;
  const backend::Launch launch = backend::detect_launch();
  check_launch(exp, launch);
  const config::Params& train_p = exp.section("train");
  c10::Device device = backend::resolve_device(train_p);
  if (launch.distributed() && device.is_cuda()) {
    // One GPU per rank: the local rank's, or the only one the rank sees (srun
    // --gpus-per-task sets CUDA_VISIBLE_DEVICES to the task's own GPU).
    const auto visible = static_cast<int>(torch::cuda::device_count());
    device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(launch.local_rank % std::max(1, visible)));
  }
  // Each rank its own random stream (augmentation, noise); the model comes from rank 0.
  backend::configure_torch(train_p, exp.seed + 1000003LL * launch.rank, device);
  if (launch.distributed() && train_p.get_int("threads") == 0) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    at::set_num_threads(std::max(1, cores / launch.local_world_size));
  }
  {
    // Every config problem before the directory is looked at. The check builds models on the
    // CPU; it must not move the run's random stream: a run draws the same weights whether or
    // not it was checked first (and what it drew before the check existed).
    const at::Tensor rng = compat::cpu_rng_state();
    check_experiment(exp);
    compat::set_cpu_rng_state(rng);
  }

  std::unique_ptr<train::DataParallel> dp;
  if (launch.distributed()) {
    if (launch.rank != 0) quiet_follower(launch.rank);
    const auto timeout = std::chrono::seconds(train_p.get_int("dist_timeout_s"));
    dp = std::make_unique<train::DataParallel>(backend::connect(launch, device, timeout), device);
    spdlog::info("data-parallel run: {} ranks over {} ({} launch, master {}:{})", dp->world(),
                 dp->group().backend(), launch.launcher, launch.master_addr, launch.master_port);
  }

  std::optional<train::RunDirectory> dir;
  Verdict verdict = Verdict::Go;
  if (!dp || dp->is_root()) {
    try {
      dir.emplace(exp, options.resume);  // RunExistsError without --resume
    } catch (...) {
      if (dp) agree(*dp, Verdict::Refused);
      throw;
    }
    if (auto status = dir->finished())
      verdict = *status == train::RunStatus::Completed ? Verdict::Completed : Verdict::Diverged;
    if (dp) agree(*dp, verdict);
  } else {
    verdict = agree(*dp, Verdict::Go);
    if (verdict == Verdict::Refused)
      throw RunError("rank 0 could not start the run in " + run_dir(exp).string() +
                     "; its output says why");
    dir.emplace(exp, options.resume, train::RunDirectory::Follower{});
  }
  RunResult out;
  out.dir = dir->path();
  if (verdict == Verdict::Completed || verdict == Verdict::Diverged) {
    spdlog::info("{} is already {}; nothing to resume", dir->path().string(),
                 verdict == Verdict::Completed ? "completed" : "diverged");
    out.status = verdict == Verdict::Completed ? train::RunStatus::Completed
                                               : train::RunStatus::Diverged;
    out.metrics = dir->previous();
    if (out.metrics.is_null())
      out.metrics = nlohmann::json::parse(read_file(dir->path() / "metrics.json"));
    return out;
  }
  dir->set_device(backend::describe_device(device));

  train::SignalScope signals;
  const int64_t interrupt_at = options.interrupt_at_step;
  experiments::TaskContext ctx(exp, device, *dir, components(), [interrupt_at](int64_t step) {
    return train::SignalScope::stop_requested() || (interrupt_at > 0 && step >= interrupt_at);
  });
  ctx.data_parallel = dp.get();
  out.status = def.run(ctx);
  if (dp) dp->barrier();  // rank 0's last files are written before anyone reads them
  out.metrics = nlohmann::json::parse(read_file(dir->path() / "metrics.json"));
  return out;
}

}  // namespace normexp::compose
