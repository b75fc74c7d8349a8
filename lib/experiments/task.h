#pragma once
// Tasks: what `normexp run` does with an experiment. `classify` (the default) is image
// classification through lib/train; every other task (a probe, SimCLR, a geometry or
// capacity experiment of files 001-003) lives in lib/experiments, reads the config sections
// it declares, and returns its results as JSON. The run directory, config.yaml,
// metrics.json (atomic), statuses and signals are handled here the same way for all tasks.
//
// Adding a task: a function `TaskResult my_task(TaskContext&)` and its options in
// lib/experiments/<file>.cpp, one entry in register_builtin_tasks (lib/registry/builtin.cpp).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "train/status.h"

namespace normexp::experiments {

// Tasks end the way classification runs do.
using TaskStatus = train::RunStatus;

struct TaskResult {
  TaskStatus status = TaskStatus::Completed;
  nlohmann::json results = nlohmann::json::object();  // metrics.json "results"
};

class TaskContext {
 public:
  TaskContext(const config::Experiment& exp, c10::Device device, std::filesystem::path dir,
              std::function<void(const nlohmann::json&)> write_partial,
              std::function<bool()> stop_requested);

  const config::Experiment& exp;
  const config::Params& task() const { return exp.section("task"); }
  c10::Device device;
  std::filesystem::path dir;  // the run directory (config.yaml is already there)

  // Rewrites metrics.json (status "running") with these partial results, so a long task
  // that dies leaves what it had.
  void write_partial(const nlohmann::json& results) const { write_partial_(results); }
  // True after SIGINT/SIGTERM: finish the current unit of work and return Interrupted.
  bool stop_requested() const { return stop_requested_(); }
  // Writes dir/name atomically (tables of curves, histograms, trajectories for plots).
  void write_file(const std::string& name, const std::string& text) const;
  // Progress mode from train.progress ("auto" resolved): bar, plain or none.
  std::string progress_mode() const;

 private:
  std::function<void(const nlohmann::json&)> write_partial_;
  std::function<bool()> stop_requested_;
};

using TaskFn = std::function<TaskResult(TaskContext&)>;

// A registry entry's factory: the sections the task reads besides "task" ("train" and
// "output" are always read: device, threads, progress, results root) and its body.
// `run` is empty for `classify`, which lib/train runs.
struct TaskDef {
  std::vector<std::string> reads;
  TaskFn run;
  // Builds what the task would build and throws ConfigError for every problem, before the
  // run directory is claimed (also what `normexp validate` calls). Optional.
  std::function<void(const config::Experiment&)> check;
};

// Runs any experiment: `classify` through train::run, every other task here. Same results
// layout, statuses, exit codes and --resume semantics (a task that did not complete starts
// again from the beginning in its directory; tasks are minutes long).
struct ExperimentResult {
  TaskStatus status = TaskStatus::Completed;
  std::filesystem::path dir;
  nlohmann::json metrics;
};
struct RunOptions {
  bool resume = false;
  int64_t interrupt_at_step = 0;  // classify only (tests)
};
ExperimentResult run_experiment(const config::Experiment& exp, const RunOptions& options = {});

// Component-level checks without running (train::build for classify, TaskDef::check else).
void check_experiment(const config::Experiment& exp);

// The task's name ("classify" when the experiment has no task section).
std::string task_name(const config::Experiment& exp);

}  // namespace normexp::experiments
