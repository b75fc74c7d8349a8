#pragma once
// One training step, shared by `normexp run` and `normexp bench` so that what is measured is
// what trains: a uint8 batch through the augmentation pipeline (and mixup/CutMix when the data
// section asks), the forward pass (bf16 autocast when asked), cross-entropy (label smoothing
// when asked), backward, gradient clipping when asked, and the optimizer step (cwo's
// projection and the noise layers included), with the loss and the correct count summed on
// the device (no host synchronization inside the step).
//
// CUDA graphs (train.cuda_graphs): after `warmup` eager steps, the whole step is captured once
// and replayed for every later batch of the same shape. The batch is copied into static
// buffers and the learning rate written into a device tensor before each replay, so LR
// schedules work under replay. Other shapes (a last partial batch) run eagerly. When capture
// is not possible (no CUDA, an optimizer with host-side per-step state, a capture error) the
// step runs eagerly and graph_status() says why; the run logs it once.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "config/schema.h"
#include "models/model.h"
#include "optim/optimizer.h"
#include "train/pipeline.h"

namespace normexp::cuda {
class Graph;
}

namespace normexp::train {

enum class GraphMode { Off, Auto, On };

// Looks at eager steps from the inside (train::LayerMonitor): called before the forward and
// after the optimizer step. A TrainStep with an observer never captures a CUDA graph.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void before_step(int64_t step) = 0;  // global step, 1-based
  virtual void after_step(const at::Tensor& logits, const at::Tensor& loss) = 0;
};
// "off" | "auto" | "on" (train.cuda_graphs); std::invalid_argument otherwise.
GraphMode parse_graph_mode(const std::string& s);
// Logs why this run's steps are not captured: a warning when graphs were asked for (`on`),
// info under `auto`, which means "where possible".
void say_graphs_off(GraphMode mode, const std::string& why);

struct StepOptions {
  bool bf16 = false;  // CUDA only: the caller turns it off elsewhere
  GraphMode graphs = GraphMode::Off;
  // Eager steps before the capture: cuDNN's autotuning and lazily created state (gradients,
  // momentum buffers, normalization constants) must exist before a graph records the step.
  int64_t warmup = 3;
  // Cross-entropy against (1 - e) one-hot + e / K (Szegedy et al. 2016); 0: plain.
  double label_smoothing = 0;
  // > 0: the gradients are scaled so that their global L2 norm is at most this (after the
  // data-parallel all-reduce, before the update; Pascanu et al. 2013). 0: off.
  double clip_grad_norm = 0;
};

// The options `run` and `bench` both take from the train section (bf16 as the caller resolved
// it for the device), for data of `modality`: CUDA graphs are off for streamed image files
// (said in a warning), since a capture runs in CUDA's global mode, which may refuse the JPEG
// loader threads' pinned-memory calls while it lasts and then invalidates the capture; nor
// would a graph pay there: an ImageNet step is not launch-bound.
StepOptions step_options_from(const config::Params& train, bool bf16, data::Modality modality);

// Scales every defined gradient of `params` by min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ their
// global L2 norm, on the device: no host read, so it runs inside a captured CUDA graph.
// Returns ‖g‖ before scaling (a float device scalar).
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

class TrainStep {
 public:
  TrainStep(models::ModelImpl& model, optim::Optimizer& optimizer, const BatchPipeline& pipeline,
            const c10::Device& device, StepOptions options);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One update on uint8 images (N,C,H,W) and int64 labels (N), both on the device; `step`
  // is the global step (1-based), recorded on the device for first_nonfinite_step().
  void run(const at::Tensor& images, const at::Tensor& labels, double lr, int64_t step);
  // Forward and backward of one batch without an update or running sums (the trainer's
  // post-mortem after a divergence, with its observer's checks on).
  void forward_backward(const at::Tensor& images, const at::Tensor& labels);
  // Must outlive the TrainStep; set before the first step (nullptr: none).
  void set_observer(StepObserver* observer);
  // Data-parallel runs (train::DataParallel): `sync` runs between the backward pass and the
  // update (the all-reduce of the gradients), and the loss is backpropagated times `weight`
  // (this rank's share of the global batch; set before each step). Eager steps only.
  void set_gradient_sync(std::function<void()> sync) { gradient_sync_ = std::move(sync); }
  void set_loss_weight(double weight) { loss_weight_ = weight; }

  // The first global step whose loss was non-finite, -1 while none (int64 device scalar: kept
  // on the device at every step, read only after a divergence).
  const at::Tensor& first_nonfinite_step() const { return bad_step_; }

  // The last step's mean loss (a float device scalar: reading it synchronizes).
  const at::Tensor& last_loss() const { return last_loss_; }
  // Sum of loss x batch size (float64) and of correct top-1 predictions (int64) since
  // reset_sums(); device scalars, updated in place (checkpoints save and restore them).
  at::Tensor& loss_sum() { return loss_sum_; }
  at::Tensor& correct() { return correct_; }
  void reset_sums();

  // Whether later steps of the captured shape replay a graph.
  bool graphed() const { return captured_; }
  // "off", "captured at step N (batch B)", or "eager: <why>", for logs and metrics.
  const std::string& graph_status() const { return status_; }

 private:
  void body(const at::Tensor& images, const at::Tensor& labels, bool capturing);
  // The batch's loss (mixup/CutMix and label smoothing applied); `logits` and the labels its
  // top-1 hits count against come back through the pointers.
  at::Tensor loss_of(const at::Tensor& images, const at::Tensor& labels, at::Tensor* logits,
                     at::Tensor* hit_labels);
  void capture(const at::Tensor& images, const at::Tensor& labels);
  void fall_back(const std::string& why);

  models::ModelImpl& model_;
  optim::Optimizer& optimizer_;
  const BatchPipeline& pipeline_;
  c10::Device device_;
  StepOptions options_;
  bool device_lr_ = false;  // lr read from lr_ on the device (graphs possible)
  bool want_graph_ = false, captured_ = false;
  int64_t steps_ = 0;
  double host_lr_ = 0;
  std::string status_ = "off";
  std::unique_ptr<cuda::Graph> graph_;
  StepObserver* observer_ = nullptr;
  std::function<void()> gradient_sync_;
  double loss_weight_ = 1.0;
  at::Tensor step_, bad_step_;
  std::vector<at::Tensor> clip_params_;  // the optimizer's parameters, for clip_grad_norm
  at::Tensor lr_, last_loss_, loss_sum_, correct_, static_images_, static_labels_;
};

}  // namespace normexp::train
