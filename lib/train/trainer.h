#pragma once
// The classification trainer: the epoch loop over a BatchSource with TrainStep, evaluation
// after every epoch, checkpoints, the history and metrics.json, progress with ETA, and the
// divergence report. It receives everything built (components, data, the claimed run
// directory) and looks nothing up.
//
// Resuming: restore() reads checkpoint.pt (model, optimizer, step, epoch position and data
// order, running sums, RNG) and the history up to it from metrics.json; fit() then continues
// mid-epoch at the next batch, so an interrupted run ends bit-identical to an uninterrupted one.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "core/clock.h"
#include "data/dataset.h"
#include "train/components.h"
#include "train/monitor.h"
#include "train/pipeline.h"
#include "train/progress.h"
#include "train/run_directory.h"
#include "train/status.h"
#include "train/step.h"

namespace normexp::train {

class Checkpoint;
class DataParallel;

class Trainer {
 public:
  // `stop_requested(step)` is asked after every step: true finishes the step, writes a
  // checkpoint and ends with Interrupted (SIGINT/SIGTERM, or a test's chosen step).
  //
  // `data_parallel` (null: a single process) makes this one rank of a data-parallel run:
  // its part of every batch, gradients summed over the ranks, agreement on stopping every
  // kAgreeEvery steps, global metrics; only rank 0's RunDirectory writes.
  Trainer(const config::Experiment& exp, Components components, std::vector<Watch> watches,
          const c10::Device& device, data::ImageData data, RunDirectory& dir,
          std::function<bool(int64_t step)> stop_requested,
          const DataParallel* data_parallel = nullptr);

  // Data-parallel ranks agree on stopping (a signal on any rank, a non-finite loss) every this
  // many steps and at every epoch's end: one tiny all-reduce, and all ranks stop at one step.
  static constexpr int64_t kAgreeEvery = 10;
  ~Trainer();

  // Continues from dir/checkpoint.pt; false when there is none (the run starts afresh).
  bool restore();
  // Trains to train.epochs (or train.max_steps) and writes the final metrics.json.
  RunStatus fit();
  // metrics.json as it is now.
  nlohmann::json metrics(const std::string& status) const;

 private:
  RunStatus train_epoch(int64_t epoch);
  RunStatus interrupted(int64_t epoch);
  // The epoch's running sums over every rank (loss, correct, images): in place, once.
  void reduce_epoch_sums();
  RunStatus diverged(int64_t epoch, const at::Tensor& images, const at::Tensor& labels);
  void write_checkpoint();
  void write_progress(const std::string& status) const;
  void write_tensorboard(const std::string& status) const;
  void append_diagnostics(const std::vector<nlohmann::json>& rows) const;
  void truncate_diagnostics(int64_t last_step) const;
  double eta(int64_t epoch, double fraction_done) const;

  // The epoch in progress; in checkpoints, so that a run interrupted mid-epoch resumes at
  // the next batch with the same data order and the same running sums.
  struct EpochState {
    int64_t epoch = 0;       // 1-based; 0 before the first epoch
    int64_t next_batch = 0;  // index of the next batch of this epoch
    int64_t seen = 0;
    double train_time = 0;  // the running loss and correct sums live in the TrainStep
  };

  const config::Experiment& exp_;
  Components c_;
  const DataParallel* dp_ = nullptr;
  bool sums_reduced_ = false;  // this epoch's sums already hold every rank's
  c10::Device device_;
  RunDirectory& dir_;
  std::function<bool(int64_t)> stop_requested_;
  BatchPipeline pipeline_;
  std::unique_ptr<data::BatchSource> train_loader_, test_loader_;
  std::unique_ptr<Progress> progress_;
  std::unique_ptr<TrainStep> stepper_;  // after c_ and pipeline_, which it refers to
  std::unique_ptr<LayerMonitor> monitor_;
  nlohmann::json divergence_;
  std::string data_description_;
  std::vector<nlohmann::json> history_;
  std::vector<double> epoch_times_;
  EpochState state_;
  int64_t classes_ = 0;
  int64_t epochs_ = 0, max_steps_ = 0, checkpoint_every_ = 0, step_ = 0, diverged_epoch_ = 0;
  int resumes_ = 0;
  double prior_wall_s_ = 0;
  bool bf16_ = false;
  bool tensorboard_ = true;  // output.tensorboard
  double start_unix_ = 0;    // the run's first start, seconds since 1970
};

}  // namespace normexp::train
