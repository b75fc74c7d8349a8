#include "experiments/capacity.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/probe.h"
#include "core/error.h"
#include "data/augment.h"
#include "nn/layers.h"
#include "nn/params.h"
#include "train/components.h"
#include "train/pipeline.h"

namespace normexp::experiments {

using config::Params;
using nlohmann::json;

namespace {

struct Parts {
  train::Components b;
  analysis::ProbedScheme* scheme = nullptr;  // owned by b.scheme
};

// All components, with the scheme wrapped in a ProbedScheme before the model asks it for layers.
Parts build(const config::Experiment& exp, const train::ComponentFactory& components,
            const c10::Device& device) {
  Parts parts;
  parts.b = components.build(exp, device, [&](std::unique_ptr<nn::NormScheme> inner) {
    auto probed = std::make_unique<analysis::ProbedScheme>(std::move(inner));
    parts.scheme = probed.get();
    return std::unique_ptr<nn::NormScheme>(std::move(probed));
  });
  return parts;
}

// Whether the layer at a norm position divides by its input's σ (BN, GN, LN, BCN...). An
// Identity (no norm) or a plain scale (the `none` scheme's SkipInit) only marks the place.
bool normalizes(const analysis::ProbeImpl& p) {
  const auto* m = p.inner().ptr().get();
  return dynamic_cast<const torch::nn::IdentityImpl*>(m) == nullptr &&
         dynamic_cast<const nn::ChannelScaleImpl*>(m) == nullptr;
}

}  // namespace

std::vector<config::OptionSpec> capacity_options() {
  using namespace config;
  return {
      opt_int("spectral_iters", 30,
              "power iterations per layer for the operator norms (each epoch)", at_least(1)),
      opt_int("train_eval_size", 0,
              "training images evaluated (eval mode, no augmentation) for the train error of "
              "the gap; 0: all",
              at_least(0)),
      opt_int("init_batches", 2,
              "training batches forwarded (no update) to measure σ_k at initialization",
              at_least(1)),
  };
}

void check_capacity(const config::Experiment& exp, const train::ComponentFactory& components) {
  build(exp, components, c10::Device(c10::kCPU));
}

TaskResult capacity(TaskContext& ctx) {
  const auto& exp = ctx.exp;
  const Params& task = ctx.task();
  const Params& train_p = exp.section("train");
  const Params& data_p = exp.section("data");
  Parts parts = build(exp, ctx.components, ctx.device);
  auto& b = parts.b;
  auto& model = *b.model;
  auto& scheme = *parts.scheme;
  data::ImageData data = b.dataset->load();
  data::require_in_memory(data, "task: capacity");

  train::BatchPipeline pipeline = train::pipeline_from_config(data_p);
  pipeline.mean = data.mean;
  pipeline.std = data.std;
  const int64_t batch = train_p.get_int("batch_size");
  data::DeviceLoader train_loader(data.train_x.to(ctx.device), data.train_y.to(ctx.device), batch,
                                  true, train_p.get_bool("drop_last"));
  int64_t n_eval = task.get_int("train_eval_size");
  if (n_eval == 0 || n_eval > data.train_x.size(0)) n_eval = data.train_x.size(0);
  const int64_t eval_batch = train_p.get_int("eval_batch_size");
  data::DeviceLoader train_eval(data.train_x.slice(0, 0, n_eval).to(ctx.device),
                                data.train_y.slice(0, 0, n_eval).to(ctx.device), eval_batch, false,
                                false);
  data::DeviceLoader test_loader(data.test_x.to(ctx.device), data.test_y.to(ctx.device), eval_batch,
                                 false, false);

  int64_t normalized = 0;
  for (const auto& p : scheme.norm_probes()) normalized += normalizes(*p) ? 1 : 0;
  const int64_t spectral_iters = task.get_int("spectral_iters");
  const bool log = ctx.progress_mode() != "none";
  spdlog::info("capacity: {} on {}: {} parameters, {} norm positions ({} normalized), {} convs",
               exp.section("model").get_string("name"), data.description, b.num_parameters,
               scheme.norm_probes().size(), normalized, scheme.conv_probes().size());

  std::vector<json> history;
  std::string sigma_dat = "# epoch layer where sigma_mean sigma_min normalized\n";
  // One row: weight norms now, σ_k from what the probes recorded since the last clear().
  auto monitor = [&](json row) {
    const auto norms = analysis::layer_norms(scheme, spectral_iters);
    double spec = 0, frob = 0;
    for (const auto& n : norms) {
      spec += std::log10(n.spectral);
      frob += std::log10(n.frobenius);
    }
    double inv_sigma = 0, inv_sigma_min = 0, bound_norm = 0;
    int64_t k = 0;
    for (const auto& p : scheme.norm_probes()) {
      auto s = p->sigma();
      if (!s.defined()) continue;
      const double mean = s.mean().item<double>(), mn = s.min().item<double>();
      const bool norm_layer = normalizes(*p);
      inv_sigma -= std::log10(mean);
      inv_sigma_min -= std::log10(mn);
      if (norm_layer) bound_norm -= std::log10(mn);
      sigma_dat += fmt::format("{} {} {} {:.6g} {:.6g} {}\n", row["epoch"].get<int64_t>(), k++,
                               p->where(), mean, mn, norm_layer ? 1 : 0);
    }
    row["log10_weight_norm_prod"] = spec;
    row["log10_frobenius_prod"] = frob;
    row["log10_inv_sigma_prod"] = inv_sigma;
    row["log10_inv_sigma_min_prod"] = inv_sigma_min;
    // Than 2025 Corollary 10 (BN): Lip <= ∏‖W_i‖ ∏‖1/σ_k‖ over the normalization layers
    // (γ left out, as the paper does); for `none` the σ's divide nothing.
    row["log10_lipschitz_bound"] = spec + bound_norm;
    history.push_back(row);
    ctx.write_history(history);
    ctx.write_file("sigma.dat", sigma_dat);
  };

  // Epoch 0: σ_k at initialization from a few training batches in training mode (no update;
  // BN running statistics restored afterwards).
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> buffers;
    for (const auto& t : model.buffers()) buffers.push_back(t.clone());
    model.train();
    train_loader.new_epoch();
    scheme.clear();
    scheme.set_recording(true);
    for (int64_t i = 0; i < std::min(task.get_int("init_batches"), train_loader.num_batches()); ++i)
      model.forward(pipeline.prepare(train_loader.batch(i).first, false));
    scheme.set_recording(false);
    auto bufs = model.buffers();
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i].copy_(buffers[i]);
    const auto test = train::evaluate(model, test_loader, pipeline, false);
    monitor({{"epoch", 0}, {"step", 0}, {"test_err", test.top1_err}, {"test_loss", test.loss}});
  }

  TaskResult result;
  const int64_t epochs = train_p.get_int("epochs"), max_steps = train_p.get_int("max_steps");
  int64_t step = 0;
  auto summary = [&] {
    json r = history.back();
    double max_w = -1e300, min_s = 1e300;
    for (const auto& h : history) {
      max_w = std::max(max_w, h["log10_weight_norm_prod"].get<double>());
      min_s = std::min(min_s, h["log10_inv_sigma_prod"].get<double>());
    }
    r["max_log10_weight_norm_prod"] = max_w;
    r["min_log10_inv_sigma_prod"] = min_s;
    r["norm_positions"] = scheme.norm_probes().size();
    r["normalized_layers"] = normalized;
    r["weight_layers"] = scheme.conv_probes().size() + 1;
    r["parameters"] = b.num_parameters;
    r["epochs_completed"] = history.size() - 1;
    return r;
  };
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    model.train();
    train_loader.new_epoch();
    scheme.clear();
    scheme.set_recording(true);
    auto loss_sum =
        torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(ctx.device));
    auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(ctx.device));
    int64_t seen = 0;
    double lr = 0;
    for (int64_t i = 0; i < train_loader.num_batches(); ++i) {
      if (max_steps > 0 && step >= max_steps) break;
      auto [images, labels] = train_loader.batch(i);
      auto logits = model.forward(pipeline.prepare(images, true));
      auto loss = torch::nn::functional::cross_entropy(logits, labels);
      b.optimizer->zero_grad();
      loss.backward();
      lr = b.schedule->lr_at(step);
      b.optimizer->step(lr);
      loss_sum.add_(loss.detach().to(torch::kDouble), static_cast<double>(labels.size(0)));
      correct.add_(logits.detach().argmax(1).eq(labels).sum());
      seen += labels.size(0);
      ++step;
    }
    scheme.set_recording(false);
    const double train_loss = seen ? loss_sum.item<double>() / seen : 0.0;
    if (!std::isfinite(train_loss)) {
      spdlog::warn("capacity: non-finite training loss in epoch {}", epoch);
      result.status = TaskStatus::Diverged;
      break;
    }
    const auto tr = train::evaluate(model, train_eval, pipeline, false);
    const auto te = train::evaluate(model, test_loader, pipeline, false);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    monitor({{"epoch", epoch},
             {"step", step},
             {"lr", lr},
             {"train_loss", train_loss},
             {"train_err", seen ? 100.0 * (1.0 - correct.item<double>() / seen) : 0.0},
             {"train_eval_err", tr.top1_err},
             {"test_err", te.top1_err},
             {"test_loss", te.loss},
             {"gap", te.top1_err - tr.top1_err},
             {"epoch_time_s", secs}});
    const auto& h = history.back();
    if (log)
      spdlog::info(
          "epoch {}/{}: train loss {:.4f} err {:.2f}% (eval {:.2f}%), test err {:.2f}%, gap "
          "{:.2f}; log10 ∏‖W‖ {:.2f}, log10 ∏1/σ {:.2f}, {:.1f}s",
          epoch, epochs, train_loss, h["train_err"].get<double>(), tr.top1_err, te.top1_err,
          h["gap"].get<double>(), h["log10_weight_norm_prod"].get<double>(),
          h["log10_inv_sigma_prod"].get<double>(), secs);
    ctx.write_partial(summary());
    if (!std::isfinite(te.loss)) {
      result.status = TaskStatus::Diverged;
      break;
    }
    if (ctx.stop_requested() && epoch < epochs) {
      result.status = TaskStatus::Interrupted;
      break;
    }
    if (max_steps > 0 && step >= max_steps) break;
  }
  result.results = summary();
  return result;
}

}  // namespace normexp::experiments
