#pragma once
// `normexp run` and `normexp validate` for any experiment: picks the task, checks the config,
// inspects the results directory, and hands the task its context. Every task gets the same
// results layout, statuses, exit codes and --resume semantics:
//   <output.root>/<name>/<hash>/seed<k>/{config.yaml, metrics.json, ...}

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "train/status.h"

namespace normexp::compose {

struct RunOptions {
  // Continue the run in its directory (from checkpoint.pt for classify and SimCLR; the other
  // results tasks, minutes long, start again); a completed or diverged run is returned as it is.
  bool resume = false;
  // For tests: act as if SIGINT arrived right after this global training step (0: never).
  int64_t interrupt_at_step = 0;
};

struct RunResult {
  train::RunStatus status = train::RunStatus::Completed;
  std::filesystem::path dir;
  nlohmann::json metrics;  // metrics.json as the run left it
};

// Throws ConfigError before writing anything for a bad config, RunExistsError when the
// directory already holds a run (without resume), RunError for data and I/O problems.
// SIGINT/SIGTERM end the task at its next safe point with status "interrupted"; a second
// signal exits at once.
RunResult run_experiment(const config::Experiment& exp, const RunOptions& options = {});

// Component-level checks without running (what `normexp validate` does).
void check_experiment(const config::Experiment& exp);

// Where the run's results go (train::RunDirectory::path_for).
std::filesystem::path run_dir(const config::Experiment& exp);

}  // namespace normexp::compose
