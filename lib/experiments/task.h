#pragma once
// Tasks: what `normexp run` does with an experiment. `classify` (the default) trains an image
// classifier with train::Trainer; the others (a probe, SimCLR, the geometry and capacity
// experiments of Arora et al. 2019, Santurkar et al. 2018 and Kohler et al. 2019) read the
// config sections they declare and return their results as JSON. The composition root
// (lib/compose) inspects the run directory, installs the signal handlers and hands the task
// everything in a TaskContext; a task looks nothing up.
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
#include "train/components.h"
#include "train/data_parallel.h"
#include "train/run_directory.h"
#include "train/status.h"

namespace normexp::experiments {

// Tasks end the way classification runs do.
using TaskStatus = train::RunStatus;

// What a results task returns: how it ended and metrics.json's "results".
struct TaskResult {
  TaskStatus status = TaskStatus::Completed;
  nlohmann::json results = nlohmann::json::object();
};

// What --resume does with an interrupted or unfinished results task.
enum class Resume {
  FromStart,       // start again from the beginning (tasks that take minutes)
  FromCheckpoint,  // the body continues from the checkpoint.pt it writes (long tasks: SimCLR)
};

class TaskContext {
 public:
  TaskContext(const config::Experiment& exp, c10::Device device, train::RunDirectory& run,
              const train::ComponentFactory& components,
              std::function<bool(int64_t step)> stop_requested);

  const config::Experiment& exp;
  const config::Params& task() const { return exp.section("task"); }
  c10::Device device;
  // Inspected (it may start or continue) but not yet claimed: a task claims it right before
  // its first write, after everything that can fail without a trace (building, loading data).
  train::RunDirectory& run;
  const std::filesystem::path& dir;  // run.path()
  const train::ComponentFactory& components;
  // Set when this process is one rank of a data-parallel run (classify only); null otherwise.
  const train::DataParallel* data_parallel = nullptr;

  // True after SIGINT/SIGTERM (or, for tests, once a trainer passes a chosen step): finish
  // the current unit of work and return Interrupted.
  bool stop_requested(int64_t step = 0) const { return stop_requested_(step); }
  const std::function<bool(int64_t)>& stop_predicate() const { return stop_requested_; }
  // Rewrites metrics.json (status "running") with these partial results, so a long task
  // that dies leaves what it had.
  void write_partial(const nlohmann::json& results) const;
  // Writes dir/name atomically (tables of curves, histograms, trajectories for plots).
  void write_file(const std::string& name, const std::string& text) const;
  // Writes history.jsonl (one row per line) and, unless output.tensorboard is false, the
  // TensorBoard log of the same rows (train/tensorboard_log.h; every numeric field a scalar).
  // `status`: running while the task goes on, completed or diverged at its end.
  void write_history(const nlohmann::json& rows, const std::string& status = "running") const;
  // Progress mode from train.progress ("auto" resolved): bar, plain or none.
  std::string progress_mode() const;
  // Wall time of the attempts before this one, for a task that continues from a checkpoint:
  // metrics.json's wall_time_s then counts the whole run.
  void set_prior_wall_time(double seconds) { prior_wall_s_ = seconds; }

 private:
  std::function<bool(int64_t)> stop_requested_;
  double prior_wall_s_ = 0;
  double start_unix_;  // the task's start, the TensorBoard session's
  // The last rows given to write_history: results_task ends their TensorBoard session.
  mutable nlohmann::json history_;
  friend std::function<TaskStatus(TaskContext&)> results_task(
      std::function<TaskResult(TaskContext&)> body, Resume resume);
};

// A registry entry's factory: the sections the task reads besides "task" ("train" and
// "output" are always read: device, threads, progress, results root), its body, and its
// checks, which run before the run directory is even looked at.
struct TaskDef {
  std::vector<std::string> reads;
  // Claims ctx.run, leaves metrics.json there and returns how it ended.
  std::function<TaskStatus(TaskContext&)> run;
  // Builds what the task would build and throws ConfigError for every problem, before the
  // run directory is claimed (also what `normexp validate` calls). Optional.
  std::function<void(const config::Experiment&, const train::ComponentFactory&)> check;
  // Which of the classification step's extras (step_extras()) the task honours; setting any
  // other one is a config error, not an option silently ignored.
  std::vector<std::string> honours;
};

// The options of train::TrainStep and the training loader beyond what every task reads
// ("data.mixup", "train.label_smoothing", ...), as "section.key".
const std::vector<std::string>& step_extras();
// ConfigError naming each extra set in `exp` that its task `def` does not honour.
void check_step_extras(const config::Experiment& exp, const TaskDef& def);

// A task that returns results only: claims the directory at once; metrics.json is the run
// record plus "task" and "results", written at the start, by write_partial and at the end.
std::function<TaskStatus(TaskContext&)> results_task(std::function<TaskResult(TaskContext&)> body,
                                                     Resume resume = Resume::FromStart);

}  // namespace normexp::experiments
