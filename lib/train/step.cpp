#include "train/step.h"

#include <torch/torch.h>

#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/cuda_backend.h"

namespace normexp::train {

GraphMode parse_graph_mode(const std::string& s) {
  if (s == "off") return GraphMode::Off;
  if (s == "auto") return GraphMode::Auto;
  if (s == "on") return GraphMode::On;
  throw std::invalid_argument("cuda_graphs must be off, auto or on, not '" + s + "'");
}

void say_graphs_off(GraphMode mode, const std::string& why) {
  spdlog::log(mode == GraphMode::On ? spdlog::level::warn : spdlog::level::info, "{}", why);
}

StepOptions step_options_from(const config::Params& train, bool bf16, data::Modality modality) {
  StepOptions o;
  o.bf16 = bf16;
  o.graphs = parse_graph_mode(train.get_string("cuda_graphs"));
  if (modality == data::Modality::Files && o.graphs != GraphMode::Off) {
    say_graphs_off(o.graphs, "train.cuda_graphs is off: the images stream from the JPEG "
                             "loader's threads, which cannot run during a capture");
    o.graphs = GraphMode::Off;
  }
  o.label_smoothing = train.get_float("label_smoothing");
  o.clip_grad_norm = train.get_float("clip_grad_norm");
  return o;
}

at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads, norms;
  for (const auto& p : params) {
    if (!p.grad().defined()) continue;
    grads.push_back(p.grad());
    norms.push_back(p.grad().detach().norm().to(torch::kFloat));
  }
  if (grads.empty()) return torch::zeros({});
  const auto total = torch::stack(norms).norm();
  const auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
  for (auto& g : grads) g.mul_(coef.to(g.scalar_type()));
  return total;
}

TrainStep::TrainStep(models::ModelImpl& model, optim::Optimizer& optimizer,
                     const BatchPipeline& pipeline, const c10::Device& device,
                     StepOptions options)
    : model_(model),
      optimizer_(optimizer),
      pipeline_(pipeline),
      device_(device),
      options_(options) {
  const auto on = torch::TensorOptions().device(device_);
  loss_sum_ = torch::zeros({}, on.dtype(torch::kDouble));
  correct_ = torch::zeros({}, on.dtype(torch::kLong));
  last_loss_ = torch::zeros({}, on.dtype(torch::kFloat));
  step_ = torch::zeros({}, on.dtype(torch::kLong));
  bad_step_ = torch::full({}, -1, on.dtype(torch::kLong));
  for (const auto& p : optimizer_.params()) clip_params_.push_back(p.tensor);
  if (options_.graphs == GraphMode::Off) return;
  // Asked for graphs: the LR lives on the device from the first step on, so the eager
  // warmup steps and the replays do the same arithmetic.
  const bool loud = options_.graphs == GraphMode::On;
  if (!device_.is_cuda()) {
    status_ = "eager: CUDA graphs need a CUDA device (this run is on " + device_.str() + ")";
    if (loud) spdlog::warn("train.cuda_graphs: {}", status_);
    return;
  }
  if (!optimizer_.capturable()) {
    status_ = "eager: the optimizer keeps per-step state on the host (e.g. AdamW's step count)";
    say_graphs_off(options_.graphs, "train.cuda_graphs: " + status_);
    return;
  }
  const auto& params = optimizer_.params();
  const auto dtype = params.empty() ? torch::kFloat : params.front().tensor.scalar_type();
  lr_ = torch::zeros({}, on.dtype(dtype));
  device_lr_ = true;
  want_graph_ = true;
  status_ = "eager: waiting for the capture after " + std::to_string(options_.warmup) +
            " warmup steps";
}

TrainStep::~TrainStep() = default;

void TrainStep::reset_sums() {
  loss_sum_.zero_();
  correct_.zero_();
}

void TrainStep::set_observer(StepObserver* observer) {
  observer_ = observer;
  if (observer_ && want_graph_) fall_back("train.monitor_every samples eager steps");
}

at::Tensor TrainStep::loss_of(const at::Tensor& images, const at::Tensor& labels,
                              at::Tensor* logits_out, at::Tensor* hit_labels) {
  auto x = pipeline_.prepare(images, /*train=*/true);
  data::MixedBatch mixed;
  if (pipeline_.mix.enabled()) {
    mixed = data::mix_batch(x, pipeline_.mix);
    x = mixed.x;
  }
  if (options_.bf16) cuda::set_bf16_autocast(true);
  auto logits = model_.forward(x).to(torch::kFloat);
  if (options_.bf16) cuda::set_bf16_autocast(false);
  *logits_out = logits;
  const auto ce = [&](const at::Tensor& y) {
    return torch::nn::functional::cross_entropy(
        logits, y,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(options_.label_smoothing));
  };
  if (!mixed.lam.defined()) {
    *hit_labels = labels;
    return ce(labels);
  }
  // Top-1 hits count against the label with the larger share.
  const auto reversed = labels.flip(0);
  *hit_labels = torch::where(mixed.lam.ge(0.5), labels, reversed);
  return mixed.lam * ce(labels) + (1 - mixed.lam) * ce(reversed);
}

void TrainStep::forward_backward(const at::Tensor& images, const at::Tensor& labels) {
  at::Tensor logits, hit_labels;
  auto loss = loss_of(images, labels, &logits, &hit_labels);
  optimizer_.zero_grad();
  loss.backward();
  if (options_.bf16) cuda::clear_autocast_cache();
}

void TrainStep::body(const at::Tensor& images, const at::Tensor& labels, bool capturing) {
  at::Tensor logits, hit_labels;
  auto loss = loss_of(images, labels, &logits, &hit_labels);
  optimizer_.zero_grad();
  if (loss_weight_ == 1.0) {
    loss.backward();
  } else {
    (loss * loss_weight_).backward();
  }
  if (gradient_sync_) gradient_sync_();
  if (options_.clip_grad_norm > 0) clip_grad_norm(clip_params_, options_.clip_grad_norm);
  // The plain path hands the host LR to the update, exactly as before graphs existed.
  if (device_lr_) {
    optimizer_.step_on_device(lr_);
  } else {
    optimizer_.step(host_lr_);
  }
  // With the cache off during capture there is nothing to clear (and clearing is host work).
  if (options_.bf16 && !capturing) cuda::clear_autocast_cache();
  const auto n = static_cast<double>(labels.size(0));
  const auto l = loss.detach();
  loss_sum_.add_(l.to(torch::kDouble), n);
  correct_.add_(logits.detach().argmax(1).eq(hit_labels).sum());
  last_loss_.copy_(l);
  // The first non-finite loss, kept on the device: a divergence is found late (the host
  // reads the loss only for progress and at the end of the epoch) but reported exactly.
  bad_step_.copy_(torch::where(bad_step_.lt(0).logical_and(l.isfinite().logical_not()), step_,
                               bad_step_));
  if (observer_) observer_->after_step(logits.detach(), l);
}

void TrainStep::run(const at::Tensor& images, const at::Tensor& labels, double lr,
                    int64_t step) {
  ++steps_;
  step_.fill_(step);  // a kernel with the value as its argument, outside any captured graph
  if (observer_) observer_->before_step(step);
  if (!device_lr_) {
    host_lr_ = lr;
    body(images, labels, /*capturing=*/false);
    return;
  }
  lr_.fill_(lr);  // a kernel with the value as its argument: no host synchronization
  if (captured_ && images.sizes() == static_images_.sizes()) {
    static_images_.copy_(images);
    static_labels_.copy_(labels);
    graph_->replay();
    return;
  }
  if (want_graph_ && !captured_ && steps_ > options_.warmup) {
    capture(images, labels);
    if (captured_) return;
  }
  body(images, labels, /*capturing=*/false);
}

void TrainStep::capture(const at::Tensor& images, const at::Tensor& labels) {
  static_images_ = images.clone();
  static_labels_ = labels.clone();
  graph_ = std::make_unique<cuda::Graph>();
  try {
    graph_->capture([&] { body(static_images_, static_labels_, /*capturing=*/true); });
  } catch (const std::exception& e) {
    graph_.reset();
    static_images_ = at::Tensor();
    static_labels_ = at::Tensor();
    fall_back(std::string("capture failed: ") + e.what());
    return;
  }
  // Capturing recorded the step without running it: this batch's update is the first replay.
  graph_->replay();
  captured_ = true;
  status_ = fmt::format("captured at step {} (batch {})", steps_, images.size(0));
  spdlog::info("train.cuda_graphs: whole training step {}; later steps replay it", status_);
}

void TrainStep::fall_back(const std::string& why) {
  want_graph_ = false;
  // Back to the host LR and the optimizer's plain (multi-tensor) update: the device LR only
  // served to make the eager steps do the replays' arithmetic.
  device_lr_ = false;
  status_ = "eager: " + why;
  spdlog::warn("train.cuda_graphs: {}; continuing without graphs", why);
}

}  // namespace normexp::train
