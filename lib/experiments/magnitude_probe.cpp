#include "experiments/magnitude_probe.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/error.h"
#include "backend/torch_compat.h"
#include "models/transformer.h"
#include "nn/params.h"
#include "backend/device.h"

namespace normexp::experiments {

using config::Params;

ProbeData make_probe_data(int64_t n, int64_t tokens, int64_t dim, double min_magnitude,
                          double max_magnitude, uint64_t seed) {
  auto gen = compat::cpu_generator(seed);
  ProbeData d;
  auto u = at::normal(0.0, 1.0, {n, tokens, dim}, gen);
  u = u / u.norm(2, {-1}, true);
  const double lo = std::log(min_magnitude), hi = std::log(max_magnitude);
  d.magnitudes = at::empty({n, tokens}).uniform_(lo, hi, gen).exp_();
  d.tokens = u * d.magnitudes.unsqueeze(-1);
  d.labels = d.magnitudes.argmax(1);
  return d;
}

at::Tensor attention_entropy(const at::Tensor& p) {
  // 0 * log 0 = 0.
  return -(p * torch::where(p > 0, p.log(), torch::zeros_like(p))).sum(-1);
}

std::vector<config::OptionSpec> probe_options() {
  using namespace config;
  return {
      opt_int("tokens", 64, "tokens per sequence T (chance 1/T; uniform attention entropy ln T)",
              at_least(2)),
      opt_int("token_dim", 32, "dimension d of each input token", at_least(1)),
      opt_float("min_magnitude", 0.5, "token magnitudes are log-uniform in [min, max]",
                greater_than(0)),
      opt_float("max_magnitude", 2.0, "upper end of the magnitude range", greater_than(0)),
      opt_int("train_size", 20000, "training sequences", at_least(1)),
      opt_int("test_size", 2000, "test sequences (accuracy and attention entropy)", at_least(1)),
      opt_int("data_seed", 0, "seed of the generated sequences (independent of the run seed)",
              at_least(0)),
      opt_int("dim", 64, "encoder width", at_least(1)),
      opt_int("depth", 2, "encoder blocks", at_least(1)),
      opt_int("heads", 4, "attention heads (must divide dim)", at_least(1)),
      opt_int("mlp_dim", 128, "hidden width of each block's MLP", at_least(1)),
  };
}

namespace {
struct ProbeParts {
  std::unique_ptr<nn::NormScheme> scheme;
  models::TokenScorer model{nullptr};
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LrSchedule> schedule;
  int64_t steps_per_epoch = 0;
};

ProbeParts build_probe(const config::Experiment& exp, const train::ComponentFactory& components,
                       const c10::Device& device) {
  const Params& t = exp.section("task");
  const Params& train = exp.section("train");
  IssueCollector collect;

  if (t.get_float("min_magnitude") >= t.get_float("max_magnitude"))
    collect.add({t.where("max_magnitude"), "task.max_magnitude",
                      "must be larger than task.min_magnitude"});
  if (t.get_int("dim") % t.get_int("heads") != 0)
    collect.add({t.where("heads"), "task.heads",
                      fmt::format("{} heads do not divide width {}", t.get_int("heads"),
                                  t.get_int("dim"))});
  ProbeParts parts;
  const int64_t batch = train.get_int("batch_size");
  parts.steps_per_epoch = (t.get_int("train_size") + batch - 1) / batch;
  const Params& norm = exp.section("norm");
  collect([&] { parts.scheme = components.norm(norm); });
  if (parts.scheme && collect.empty()) {
    collect([&] {
      parts.model = models::TokenScorer(t.get_int("token_dim"), t.get_int("dim"),
                                        t.get_int("depth"), t.get_int("heads"),
                                        t.get_int("mlp_dim"), *parts.scheme);
    });
  }
  const Params& optim_p = exp.section("optim");
  const Params& sched = exp.section("schedule");
  const double lr = optim::scaled_lr(optim_p, batch);
  collect([&] {
    parts.schedule = components.schedule(sched, {lr, parts.steps_per_epoch, train.get_int("epochs")});
  });
  if (parts.model) {
    parts.model->to(device);
    collect([&] {
      parts.optimizer = components.optimizer(optim_p, nn::classify_parameters(*parts.model));
    });
  }
  collect.throw_if_any();
  return parts;
}

}  // namespace

void check_probe(const config::Experiment& exp, const train::ComponentFactory& components) {
  build_probe(exp, components, c10::Device(c10::kCPU));
}

TaskResult run_probe(TaskContext& ctx) {
  const Params& t = ctx.task();
  const Params& train = ctx.exp.section("train");
  auto parts = build_probe(ctx.exp, ctx.components, ctx.device);
  auto& model = parts.model;
  const int64_t T = t.get_int("tokens"), d = t.get_int("token_dim");
  const auto seed = static_cast<uint64_t>(t.get_int("data_seed"));
  auto train_data = make_probe_data(t.get_int("train_size"), T, d, t.get_float("min_magnitude"),
                                    t.get_float("max_magnitude"), seed);
  // A different stream for the test set: the same seed + a fixed offset.
  auto test_data = make_probe_data(t.get_int("test_size"), T, d, t.get_float("min_magnitude"),
                                   t.get_float("max_magnitude"), seed + 0x9e3779b9ULL);
  auto xs = train_data.tokens.to(ctx.device), ys = train_data.labels.to(ctx.device);
  auto xt = test_data.tokens.to(ctx.device), yt = test_data.labels.to(ctx.device);
  const int64_t n = xs.size(0), batch = train.get_int("batch_size");
  const int64_t epochs = train.get_int("epochs");

  auto accuracy = [&](const torch::Tensor& x, const torch::Tensor& y) {
    torch::NoGradGuard g;
    model->eval();
    torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(ctx.device));
    for (int64_t i = 0; i < x.size(0); i += 500) {
      auto scores = model->forward(x.slice(0, i, i + 500));
      correct += scores.argmax(1).eq(y.slice(0, i, i + 500)).sum();
    }
    model->train();
    return 100.0 * static_cast<double>(correct.item<int64_t>()) / x.size(0);
  };

  nlohmann::json history = nlohmann::json::array();
  int64_t step = 0;
  const auto t0 = std::chrono::steady_clock::now();
  model->train();
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    auto order = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong).device(ctx.device));
    auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(ctx.device));
    for (int64_t i = 0; i < n; i += batch) {
      auto idx = order.slice(0, i, std::min(i + batch, n));
      auto scores = model->forward(xs.index_select(0, idx));
      auto loss = torch::nn::functional::cross_entropy(scores, ys.index_select(0, idx));
      parts.optimizer->zero_grad();
      loss.backward();
      parts.optimizer->step(parts.schedule->lr_at(step++));
      loss_sum += loss.detach().to(torch::kDouble) * idx.size(0);
    }
    const double train_loss = loss_sum.item<double>() / n;
    if (!std::isfinite(train_loss)) {
      spdlog::warn("epoch {}: non-finite loss; stopping (status 'diverged')", epoch);
      TaskResult r;
      r.status = TaskStatus::Diverged;
      r.results = {{"diverged_epoch", epoch}, {"history", history}};
      return r;
    }
    const double test_acc = accuracy(xt, yt);
    nlohmann::json row = {{"epoch", epoch},
                          {"step", step},
                          {"train_loss", train_loss},
                          {"test_acc", test_acc},
                          {"test_err", 100.0 - test_acc},
                          {"elapsed_s", seconds_since(t0)}};
    history.push_back(row);
    ctx.write_history(history);
    if (ctx.progress_mode() != "none")
      spdlog::info("epoch {}/{}  train loss {:.4f}  test acc {:.2f}%  {:.1f}s", epoch, epochs,
                   train_loss, test_acc, seconds_since(t0));
    ctx.write_partial({{"history", history}});
    if (ctx.stop_requested() && epoch < epochs) {
      TaskResult r;
      r.status = TaskStatus::Interrupted;
      r.results = {{"history", history}};
      return r;
    }
  }

  // Attention entropy of the trained model on the test set.
  torch::NoGradGuard no_grad;
  model->eval();
  for (auto& b : model->blocks()) b->attention()->record(true);
  std::vector<torch::Tensor> per_layer(model->blocks().size());
  for (int64_t i = 0; i < xt.size(0); i += 500) {
    model->forward(xt.slice(0, i, i + 500));
    for (size_t l = 0; l < per_layer.size(); ++l) {
      auto h = attention_entropy(model->blocks()[l]->attention()->attention()).flatten().to(torch::kDouble).cpu();
      per_layer[l] = per_layer[l].defined() ? torch::cat({per_layer[l], h}) : h;
    }
  }
  auto all = torch::cat(per_layer);
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& h : per_layer)
    layers.push_back({{"mean", h.mean().item<double>()}, {"std", h.std().item<double>()}});

  TaskResult r;
  r.results = {
      {"test_acc", accuracy(xt, yt)},
      {"train_acc", accuracy(xs, ys)},
      {"chance_acc", 100.0 / T},
      {"attention_entropy_mean", all.mean().item<double>()},
      {"attention_entropy_std", all.std().item<double>()},
      {"attention_entropy_max", std::log(static_cast<double>(T))},
      {"attention_entropy_per_layer", layers},
      {"train_time_s", seconds_since(t0)},
      {"history", history},
  };
  return r;
}

}  // namespace normexp::experiments
