#include "experiments/task.h"

#include <torch/torch.h>

#include <chrono>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/torch_info.h"
#include "core/version.h"
#include "registry/builtin.h"
#include "train/device.h"
#include "train/progress.h"
#include "train/run.h"

namespace normexp::experiments {

TaskContext::TaskContext(const config::Experiment& e, c10::Device d, std::filesystem::path run_dir,
                         std::function<void(const nlohmann::json&)> write_partial,
                         std::function<bool()> stop_requested)
    : exp(e),
      device(d),
      dir(std::move(run_dir)),
      write_partial_(std::move(write_partial)),
      stop_requested_(std::move(stop_requested)) {}

void TaskContext::write_file(const std::string& name, const std::string& text) const {
  write_file_atomic(dir / name, text);
}

std::string TaskContext::progress_mode() const {
  switch (train::Progress::parse_mode(exp.section("train").get_string("progress"))) {
    case train::Progress::Mode::Bar: return "bar";
    case train::Progress::Mode::Plain: return "plain";
    case train::Progress::Mode::None: return "none";
  }
  return "plain";
}

std::string task_name(const config::Experiment& exp) {
  auto it = exp.sections.find("task");
  return it == exp.sections.end() ? "classify" : it->second.get_string("name");
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

ExperimentResult run_experiment(const config::Experiment& exp, const RunOptions& options) {
  const std::string name = task_name(exp);
  const auto& def = registry::tasks().get(name).make;
  ExperimentResult out;
  if (!def.run) {  // classify
    train::RunOptions o;
    o.resume = options.resume;
    o.interrupt_at_step = options.interrupt_at_step;
    auto r = train::run(exp, o);
    out.status = r.status;
    out.dir = std::move(r.dir);
    out.metrics = std::move(r.metrics);
    return out;
  }

  const c10::Device device = train::resolve_device(exp.section("train"));
  train::setup_torch(exp, device);
  if (def.check) def.check(exp);  // every config problem before anything is written
  const auto dir = train::run_dir(exp);
  const bool exists = std::filesystem::exists(dir);
  if (exists && !options.resume) train::claim_dir(dir);  // throws with the old run's status
  if (exists && std::filesystem::exists(dir / "metrics.json")) {
    auto old = nlohmann::json::parse(read_file(dir / "metrics.json"));
    const std::string status = old.value("status", "unknown");
    if (status == "completed" || status == "diverged") {
      spdlog::info("{} is already {}; nothing to resume", dir.string(), status);
      out.status = status == "completed" ? TaskStatus::Completed : TaskStatus::Diverged;
      out.dir = dir;
      out.metrics = std::move(old);
      return out;
    }
    spdlog::info("{}: task '{}' did not complete ({}); starting it again from the beginning",
                 dir.string(), name, status);
  }
  if (!exists) train::claim_dir(dir);

  const std::string started_at = train::iso_time_now();
  const auto t0 = std::chrono::steady_clock::now();
  auto metrics = [&](const std::string& status, const nlohmann::json& results) {
    nlohmann::json m;
    m["name"] = exp.name;
    m["hash"] = exp.hash();
    m["seed"] = exp.seed;
    m["task"] = name;
    m["status"] = status;
    m["config"] = exp.resolved();
    m["config_file"] = exp.source;
    m["results"] = results;
    m["versions"] = {{"normexp", normexp_version()},
                     {"git_commit", git_commit()},
                     {"libtorch", torch_version()}};
    m["device"] = train::describe_device(device);
    m["started_at"] = started_at;
    m["updated_at"] = train::iso_time_now();
    m["wall_time_s"] = seconds_since(t0);
    return m;
  };
  auto write = [&](const std::string& status, const nlohmann::json& results) {
    write_file_atomic(dir / "metrics.json", metrics(status, results).dump(2) + "\n");
  };
  write_file_atomic(dir / "config.yaml", exp.resolved_yaml());
  write("running", nlohmann::json::object());
  spdlog::info("run {} [{}] task {} seed {} on {} -> {}", exp.name, exp.hash(), name, exp.seed,
               train::describe_device(device), dir.string());

  train::SignalScope signals;
  TaskContext ctx(
      exp, device, dir, [&](const nlohmann::json& r) { write("running", r); },
      [] { return train::SignalScope::stop_requested(); });
  TaskResult r = def.run(ctx);
  write(train::status_name(r.status), r.results);
  out.status = r.status;
  out.dir = dir;
  out.metrics = metrics(train::status_name(r.status), r.results);
  return out;
}

void check_experiment(const config::Experiment& exp) {
  const auto& def = registry::tasks().get(task_name(exp)).make;
  if (!def.run) {
    train::build(exp, c10::Device(c10::kCPU));
  } else if (def.check) {
    def.check(exp);
  }
}

}  // namespace normexp::experiments
