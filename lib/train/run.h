#pragma once
// One experiment run, from a resolved config to a results directory:
//   <output.root>/<name>/<hash>/seed<k>/{config.yaml, metrics.json, history.jsonl}
// Every file is written atomically; metrics.json is rewritten after every epoch, so a run
// that dies leaves the history up to its last epoch with status "running".

#include <filesystem>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "data/dataset.h"
#include "models/model.h"
#include "nn/norm_scheme.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/status.h"

namespace c10 {
struct Device;
}

namespace normexp::train {

// Every component of an experiment, built without loading data. Component-level checks
// (e.g. noise sigma without a schedule, a width giving no channels) surface here as one
// ConfigError with all issues.
struct Built {
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

// Builds on `device` (the model is moved there before the optimizer takes its parameters).
Built build(const config::Experiment& exp, const c10::Device& device,
            const SchemeDecorator& decorate = {});

std::filesystem::path run_dir(const config::Experiment& exp);


struct RunResult {
  RunStatus status = RunStatus::Completed;
  std::filesystem::path dir;
  nlohmann::json metrics;
};

struct RunOptions {
  // Continue the run in its directory from checkpoint.pt (start it when there is none; a
  // completed or diverged run is returned as it is).
  bool resume = false;
  // For tests: act as if SIGINT arrived right after this global step (0: never).
  int64_t interrupt_at_step = 0;
};

// Trains and writes the results directory. Throws ConfigError before writing anything for a
// bad config, RunExistsError when the directory already holds a run (without resume),
// RunError for data and I/O problems. SIGINT/SIGTERM finish the current step, write a
// checkpoint, record status "interrupted" and return; a second signal exits at once.
// Checkpoints (model, optimizer state, step, epoch position and data order, RNG states) are
// written every train.checkpoint_every epochs and at the end.
RunResult run(const config::Experiment& exp, const RunOptions& options = {});

// Shared with the other tasks (lib/experiments).
// Creates the run directory; RunExistsError (with the old run's status) when it exists.
// Creating the leaf is atomic, so two runs started at once cannot both write there.
void claim_dir(const std::filesystem::path& dir);
// Threads, deterministic algorithms, cuDNN benchmark and the seed, from the train section.
void setup_torch(const config::Experiment& exp, const c10::Device& device);
std::string iso_time_now();  // UTC, ISO 8601
// SIGINT/SIGTERM handlers for the duration of a run (old ones restored after): the first
// signal sets stop_requested(), a second one exits at once.
class SignalScope {
 public:
  SignalScope();
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  static bool stop_requested();

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

}  // namespace normexp::train
