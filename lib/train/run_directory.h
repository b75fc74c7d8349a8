#pragma once
// The results directory of one run, used by every task (classification and the others):
//   <output.root>/<name>/<hash>/seed<k>/{config.yaml, metrics.json, history.jsonl, ...}
// It decides whether a run may start or continue there, claims the directory atomically,
// and writes every file atomically, so a reader never sees a half-written file.
//
// One writer at a time: a writer holds an advisory lock (flock) on <hash>/.seed<k>.lock from
// the moment it claims or reopens the directory until it ends; the kernel drops the lock when
// the process dies, so a crash never leaves a stale lock. A second writer (a --resume of a
// live run, a requeued Slurm task) exits 3 naming the holder's pid, host and start time. On a
// network file system without lock support (some NFS and Lustre mounts) the lock cannot be
// taken: the run goes on with a warning, and only one writer per run is then the user's job.

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "core/clock.h"
#include "train/status.h"

namespace normexp::train {

class RunDirectory {
 public:
  static std::filesystem::path path_for(const config::Experiment& exp);

  // Looks at the run's directory without writing anything. Without `resume`, a directory that
  // exists is RunExistsError (exit 3) naming the status of the run there. With `resume`, the
  // metrics.json found there is read (RunError naming the file when it cannot be parsed).
  RunDirectory(const config::Experiment& exp, bool resume);
  // A data-parallel rank other than 0: the same path, but it never locks, creates or writes
  // anything (every write is a no-op); on `resume` it reads metrics.json as rank 0 found it.
  struct Follower {};
  RunDirectory(const config::Experiment& exp, bool resume, Follower);
  bool writes() const { return !follower_; }
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // True when --resume found the directory (the run continues or restarts in it).
  bool reopened() const { return reopened_; }
  // The metrics.json found on reopening (null when there was none).
  const nlohmann::json& previous() const { return previous_; }
  // Completed or Diverged when the run found there has ended: nothing is left to do.
  std::optional<RunStatus> finished() const;

  // Creates the directory when it is new (RunExistsError when it exists by now or another
  // writer holds the lock). Writes config.yaml and starts the wall clock.
  void claim();

  // metrics.json: the record every run has (name, hash, seed, status, config, versions,
  // device, times) merged with `fields` (a task's results, a trainer's history).
  // `prior_wall_s` is the wall time of earlier attempts (resumed runs).
  nlohmann::json metrics(const std::string& status, const nlohmann::json& fields,
                         double prior_wall_s = 0) const;
  void write_metrics(const nlohmann::json& metrics) const;

  // Any other file of the run, atomically (tables, curves, history.jsonl).
  void write_file(const std::string& name, const std::string& text) const;
  void append_file(const std::string& name, const std::string& text) const;

  void set_device(std::string description) { device_ = std::move(description); }
  const std::string& started_at() const { return started_at_; }
  void set_started_at(std::string iso) { started_at_ = std::move(iso); }
  double seconds_running() const { return seconds_since(started_); }

 private:
  const config::Experiment& exp_;
  std::filesystem::path path_;
  bool reopened_ = false;
  bool follower_ = false;
  nlohmann::json previous_;
  std::string device_, started_at_;
  SteadyTime started_;
  int lock_fd_ = -1;

  // Takes the writer's lock or throws RunExistsError naming the holder.
  void lock();
  void remove_stale_temporaries() const;
};

}  // namespace normexp::train
