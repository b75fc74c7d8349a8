#include "experiments/simclr.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "core/error.h"
#include "data/augment.h"
#include "nn/params.h"
#include "backend/cuda_backend.h"
#include "train/checkpoint.h"
#include "train/components.h"
#include "train/step.h"

namespace normexp::experiments {

using config::Params;
namespace F = torch::nn::functional;

at::Tensor nt_xent(const at::Tensor& z1, const at::Tensor& z2, double temperature) {
  const int64_t n = z1.size(0);
  auto z = F::normalize(torch::cat({z1, z2}), F::NormalizeFuncOptions().dim(1));
  auto sim = torch::matmul(z, z.t()) / temperature;
  // A sample is never its own negative.
  sim = sim.masked_fill(torch::eye(2 * n, torch::TensorOptions().dtype(torch::kBool).device(z.device())),
                        -std::numeric_limits<float>::infinity());
  auto idx = torch::arange(2 * n, torch::TensorOptions().dtype(torch::kLong).device(z.device()));
  auto target = torch::remainder(idx + n, 2 * n);
  return F::cross_entropy(sim, target);
}

double knn_accuracy(const at::Tensor& train, const at::Tensor& train_labels,
                    const at::Tensor& test, const at::Tensor& test_labels, int64_t k,
                    int64_t classes, double temperature) {
  torch::NoGradGuard no_grad;
  k = std::min<int64_t>(k, train.size(0));
  auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(test.device()));
  for (int64_t i = 0; i < test.size(0); i += 256) {
    auto q = test.slice(0, i, i + 256);
    auto sim = torch::matmul(q, train.t());  // (b, n_train)
    auto [top, idx] = sim.topk(k, 1);
    auto weights = (top / temperature).exp();
    auto votes = torch::zeros({q.size(0), classes}, q.options());
    votes.scatter_add_(1, train_labels.index_select(0, idx.flatten()).view(idx.sizes()), weights);
    correct += votes.argmax(1).eq(test_labels.slice(0, i, i + 256)).sum();
  }
  return 100.0 * static_cast<double>(correct.item<int64_t>()) / std::max<int64_t>(1, test.size(0));
}

namespace {
at::Tensor gray(const at::Tensor& x) {  // (N, 3, H, W) -> (N, 1, H, W), PIL's "L" weights
  return x.select(1, 0).unsqueeze(1) * 0.299 + x.select(1, 1).unsqueeze(1) * 0.587 +
         x.select(1, 2).unsqueeze(1) * 0.114;
}

// Per-image uniform draws in [lo, hi), shaped (N, 1, 1, 1) for broadcasting.
at::Tensor draw(int64_t n, double lo, double hi, const at::TensorOptions& o) {
  return torch::empty({n, 1, 1, 1}, o).uniform_(lo, hi);
}
}  // namespace

at::Tensor simclr_view(const at::Tensor& images, double crop_min) {
  const int64_t n = images.size(0), c = images.size(1);
  const auto o = torch::TensorOptions().dtype(torch::kFloat).device(images.device());
  auto x = images.to(torch::kFloat).div_(255.0);
  // Random resized crop + flip as one affine resampling per image.
  auto scale = torch::empty({n}, o).uniform_(crop_min, 1.0);
  auto log_ratio = torch::empty({n}, o).uniform_(std::log(3.0 / 4.0), std::log(4.0 / 3.0));
  auto ratio = log_ratio.exp();
  auto w = torch::sqrt(scale * ratio).clamp_max(1.0);
  auto h = torch::sqrt(scale / ratio).clamp_max(1.0);
  auto cx = (torch::rand({n}, o) * 2 - 1) * (1 - w);
  auto cy = (torch::rand({n}, o) * 2 - 1) * (1 - h);
  auto flip = torch::where(torch::rand({n}, o) < 0.5, torch::ones({n}, o), -torch::ones({n}, o));
  auto zero = torch::zeros({n}, o);
  auto theta = torch::stack({torch::stack({w * flip, zero, cx}, 1), torch::stack({zero, h, cy}, 1)}, 1);
  auto grid = F::affine_grid(theta, {n, c, images.size(2), images.size(3)}, /*align_corners=*/false);
  x = F::grid_sample(x, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).align_corners(false));
  // Colour jitter with probability 0.8: brightness, contrast, then (colour images)
  // saturation, strength 0.4 each. Grey images get brightness and contrast: with crops alone
  // their two views share an intensity histogram, a shortcut to matching them (Chen et al.
  // 2020 §3, Figure 6, on colour histograms).
  auto apply = (torch::rand({n, 1, 1, 1}, o) < 0.8).to(torch::kFloat);
  auto j = (x * draw(n, 0.6, 1.4, o)).clamp(0, 1);
  auto m = (c == 3 ? gray(j) : j.mean(1, true)).mean({2, 3}, true);
  j = ((j - m) * draw(n, 0.6, 1.4, o) + m).clamp(0, 1);
  if (c == 3) {
    auto g = gray(j);
    j = ((j - g) * draw(n, 0.6, 1.4, o) + g).clamp(0, 1);
  }
  x = apply * j + (1 - apply) * x;
  if (c == 3) {
    // Grayscale with probability 0.2.
    auto to_gray = (torch::rand({n, 1, 1, 1}, o) < 0.2).to(torch::kFloat);
    x = to_gray * gray(x).expand_as(x) + (1 - to_gray) * x;
  }
  return x;
}

at::Tensor unit_rows(const at::Tensor& features) {
  return F::normalize(features.to(torch::kDouble), F::NormalizeFuncOptions().dim(1));
}

double mean_pairwise_cosine(const at::Tensor& unit_rows) {
  const auto n = static_cast<double>(unit_rows.size(0));
  if (n < 2) return 1.0;
  // sum over i != j of u_i . u_j = |sum_i u_i|^2 - sum_i |u_i|^2, in double for large n
  // (a no-op conversion for unit_rows' output).
  const auto u = unit_rows.to(torch::kDouble);
  const auto sum = u.sum(0);
  return (sum.dot(sum).item<double>() - u.pow(2).sum().item<double>()) / (n * (n - 1));
}

double radial_variance_fraction(const at::Tensor& features) {
  const auto h = features.to(torch::kDouble);
  if (h.size(0) < 2) return 0.0;
  const auto mean = h.mean(0);
  const double mean_norm = mean.norm().item<double>();
  const double total = h.var(0).sum().item<double>();
  if (mean_norm == 0 || total == 0) return 0.0;
  // h = r u^T + e with e orthogonal to u, so the total variance is var(r) + that of e.
  return h.matmul(mean / mean_norm).var().item<double>() / total;
}

torch::nn::Sequential make_projection_head(int64_t features, int64_t hidden, int64_t out,
                                           bool batch_norm) {
  torch::nn::Sequential head(
      torch::nn::Linear(torch::nn::LinearOptions(features, hidden).bias(!batch_norm)));
  if (batch_norm) head->push_back(torch::nn::BatchNorm1d(hidden));
  head->push_back(torch::nn::ReLU());
  head->push_back(torch::nn::Linear(hidden, out));
  return head;
}

std::vector<config::OptionSpec> simclr_options() {
  using namespace config;
  return {
      opt_float("temperature", 0.5, "NT-Xent temperature (SimCLR's CIFAR setting: 0.5)",
                greater_than(0)),
      opt_int("proj_hidden", 2048, "projection head hidden width", at_least(1)),
      opt_int("proj_dim", 128, "projection output width (SimCLR: 128)", at_least(1)),
      opt_float("crop_min", 0.08, "smallest random-resized-crop area fraction", between(0, 1, true, false)),
      opt_int("knn_k", 200, "neighbours of the kNN read-out (Wu et al. 2018: 200)", at_least(1)),
      opt_int("eval_every", 10, "kNN accuracy every N epochs (and at the end)", at_least(1)),
      opt_float("target_acc", 70.0, "report the first epoch whose kNN accuracy reaches this (%)",
                between(0, 100)),
      opt_int("linear_epochs", 100, "linear evaluation: epochs over the frozen features",
              at_least(1)),
      opt_float("linear_lr", 0.1, "linear evaluation: SGD learning rate (cosine to 0)",
                greater_than(0)),
      // Added after SimCLR results existed: at the default, runs keep their hash.
      hashed_unless_default(opt_bool(
          "head_bn", false,
          "BatchNorm on the projection head's hidden layer, as SimCLR's own code (Chen et al. "
          "2020). Without it, an encoder whose norm does not center over the batch (ln, bcn) "
          "gives nearly equal projections at init and NT-Xent stays at ln(2B - 1)")),
      opt_int("knn_train_limit", 0,
              "use only the first N training images as kNN/linear-eval training set (0: all)",
              at_least(0)),
  };
}

namespace {
struct SimclrParts {
  train::Components b;  // dataset, scheme, encoder (as `model`), optimizer over encoder + head
  torch::nn::Sequential head{nullptr};
};

SimclrParts build_simclr(const config::Experiment& exp, const train::ComponentFactory& components,
                         const c10::Device& device) {
  SimclrParts parts;
  // build() makes the dataset, scheme, model, schedule and an optimizer over the model's
  // parameters; the optimizer is rebuilt below over encoder + projection head.
  parts.b = components.build(exp, device);
  const Params& t = exp.section("task");
  int64_t f = 0;
  try {
    f = parts.b.model->feature_dim();
  } catch (const std::logic_error&) {
    throw ConfigError(exp.section("model").where("name"), "model.name",
                      "model '" + exp.section("model").get_string("name") +
                          "' exposes no pooled features for SimCLR");
  }
  parts.head = make_projection_head(f, t.get_int("proj_hidden"), t.get_int("proj_dim"),
                                    t.get_bool("head_bn"));
  parts.head->to(device);
  auto params = nn::classify_parameters(*parts.b.model);
  auto head_params = nn::classify_parameters(*parts.head);
  for (auto& p : head_params) p.name = "head." + p.name;
  params.insert(params.end(), head_params.begin(), head_params.end());
  parts.b.optimizer = components.optimizer(exp.section("optim"), params);
  return parts;
}


constexpr const char* kCheckpoint = "checkpoint.pt";

// Where pretraining stands: what a checkpoint holds besides the weights and the optimizer.
struct SimclrProgress {
  int64_t step = 0;
  int64_t epoch = 0;       // the epoch in progress or, with next_batch 0, the last one done
  int64_t next_batch = 0;  // > 0: the checkpoint was taken mid-epoch, before this batch
  at::Tensor loss_sum;     // NT-Xent summed over the epoch's batches so far (device, double)
  double elapsed_before = 0, elapsed_now = 0;  // training seconds before this attempt / at save
  nlohmann::json history = nlohmann::json::array();
  nlohmann::json epochs_to_target = nullptr;
};

// As the classification trainer's checkpoint (train/checkpoint.h): weights, optimizer state,
// position, data order and RNG states, so a resumed run draws the same views and batches as
// one that was never stopped.
void save_checkpoint(const std::filesystem::path& path, const torch::nn::Module& networks,
                     const optim::Optimizer& optimizer, const data::DeviceLoader& loader,
                     const SimclrProgress& p, const c10::Device& device) {
  train::Checkpoint ck;
  ck.set_model(networks);
  ck.set_optimizer(optimizer);
  ck.progress = {{"step", torch::tensor(p.step)},
                 {"epoch", torch::tensor(p.epoch)},
                 {"next_batch", torch::tensor(p.next_batch)},
                 {"loss_sum", p.loss_sum.cpu()},
                 {"elapsed_s", torch::tensor(p.elapsed_now, torch::kDouble)}};
  ck.set_text("record_json",
              nlohmann::json{{"history", p.history}, {"epochs_to_target", p.epochs_to_target}}
                  .dump());
  ck.set_rng_states(device);
  if (p.next_batch > 0 && loader.order().defined()) ck.progress["order"] = loader.order().cpu();
  ck.save(path);
}

SimclrProgress restore_checkpoint(const std::filesystem::path& path, torch::nn::Module& networks,
                                  optim::Optimizer& optimizer, data::DeviceLoader& loader,
                                  const c10::Device& device) {
  const std::string source = path.string();
  const auto ck = train::Checkpoint::load(path);
  ck.restore_model(networks, source);
  optimizer.load_state(ck.optimizer);
  auto at = [&](const std::string& key) { return ck.progress_at(key, source); };
  SimclrProgress p;
  p.step = at("step").item<int64_t>();
  p.epoch = at("epoch").item<int64_t>();
  p.next_batch = at("next_batch").item<int64_t>();
  p.loss_sum = at("loss_sum").to(device, torch::kDouble);
  p.elapsed_before = at("elapsed_s").item<double>();
  try {
    const auto record = nlohmann::json::parse(ck.text_at("record_json", source));
    p.history = record.at("history");
    p.epochs_to_target = record.at("epochs_to_target");
  } catch (const nlohmann::json::exception& e) {
    throw RunError("checkpoint " + source + ": unreadable history (" + e.what() + ")");
  }
  if (p.next_batch > 0) loader.set_order(at("order").to(device));
  ck.restore_rng_states(device, source);
  return p;
}

}  // namespace

void check_simclr(const config::Experiment& exp, const train::ComponentFactory& components) {
  IssueCollector issues;
  // SimCLR makes its own views: the classification pipeline's would be silently ignored, so
  // setting one is an error (the training step's extras are refused by check_step_extras).
  const Params& data = exp.section("data");
  for (const char* key : {"random_erasing", "cutout"})
    if (!data.is_default(key))
      issues([&] { throw data.error(key, "not used by task simclr (it makes its own views)"); });
  if (data.get_string("augment") == "fastaa" || data.get_string("augment") == "randaugment")
    issues([&] {
      throw data.error("augment", "task simclr makes its own views (lib/experiments/simclr.h); "
                                  "use none");
    });
  issues([&] { build_simclr(exp, components, c10::Device(c10::kCPU)); });
  issues.throw_if_any();
}

TaskResult run_simclr(TaskContext& ctx) {
  const Params& t = ctx.task();
  const Params& train = ctx.exp.section("train");
  auto parts = build_simclr(ctx.exp, ctx.components, ctx.device);
  auto& model = *parts.b.model;
  auto data = parts.b.dataset->load();
  data::require_in_memory(data, "task: simclr");
  const bool bf16 = train.get_bool("bf16") && ctx.device.is_cuda();
  const int64_t epochs = train.get_int("epochs");
  const double tau = t.get_float("temperature"), crop_min = t.get_float("crop_min");
  auto [scale, shift] = data::normalize_affine(data.mean, data.std, ctx.device);
  auto train_x = data.train_x.to(ctx.device), train_y = data.train_y.to(ctx.device);
  auto test_x = data.test_x.to(ctx.device), test_y = data.test_y.to(ctx.device);
  if (t.get_int("knn_train_limit") > 0) {
    train_x = train_x.slice(0, 0, t.get_int("knn_train_limit"));
    train_y = train_y.slice(0, 0, t.get_int("knn_train_limit"));
  }
  data::DeviceLoader loader(data.train_x.to(ctx.device), data.train_y.to(ctx.device),
                            train.get_int("batch_size"), /*shuffle=*/true, /*drop_last=*/true);
  if (loader.num_batches() == 0)
    throw ConfigError(train.where("batch_size"), "train.batch_size",
                      "larger than the training set: no SimCLR batch");

  // Frozen, unaugmented, L2-normalized encoder features.
  auto features = [&](const torch::Tensor& x) {
    torch::NoGradGuard g;
    model.eval();
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < x.size(0); i += 500) {
      auto in = torch::addcmul(shift, x.slice(0, i, i + 500).to(torch::kFloat).div(255.0), scale);
      if (bf16) cuda::set_bf16_autocast(true);
      out.push_back(model.features(in).to(torch::kFloat));
      if (bf16) cuda::set_bf16_autocast(false);
    }
    model.train();
    return torch::cat(out);
  };
  const int64_t classes = data.shape.classes;
  // kNN accuracy and the test features' mean pairwise cosine, which tells a read-out that
  // learned nothing from features that all point one way (a common part swamping what tells
  // images apart: the cosine kNN then fails while the standardized linear probe may not).
  // The radial fraction tells features that differ mainly by a per-sample scale, which the
  // projection head's BatchNorm turns into the projections' main difference.
  struct Readout {
    double knn_acc, feature_cos, feature_radial;
  };
  auto knn = [&] {
    const auto test_f = features(test_x);
    const auto test_u = unit_rows(test_f);
    return Readout{knn_accuracy(unit_rows(features(train_x)), train_y, test_u, test_y,
                                t.get_int("knn_k"), classes),
                   mean_pairwise_cosine(test_u), radial_variance_fraction(test_f)};
  };

  // Encoder and projection head under one module, so the checkpoint names them apart.
  torch::nn::Module networks;
  networks.register_module("encoder", parts.b.model);
  networks.register_module("head", parts.head.ptr());
  const int64_t checkpoint_every = train.get_int("checkpoint_every");
  const double clip = train.get_float("clip_grad_norm");
  std::vector<at::Tensor> clip_params;
  for (const auto& p : parts.b.optimizer->params()) clip_params.push_back(p.tensor);

  SimclrProgress progress;
  progress.loss_sum =
      torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(ctx.device));
  if (ctx.run.reopened() && std::filesystem::exists(ctx.dir / kCheckpoint)) {
    progress = restore_checkpoint(ctx.dir / kCheckpoint, networks, *parts.b.optimizer, loader,
                                  ctx.device);
    if (ctx.run.previous().is_object()) {
      ctx.run.set_started_at(ctx.run.previous().value("started_at", ctx.run.started_at()));
      ctx.set_prior_wall_time(ctx.run.previous().value("wall_time_s", 0.0));
    }
    spdlog::info("resuming SimCLR at epoch {} (batch {} of the epoch), step {}",
                 progress.next_batch > 0 ? progress.epoch : progress.epoch + 1,
                 progress.next_batch, progress.step);
  }
  auto& history = progress.history;
  auto& epochs_to_target = progress.epochs_to_target;
  int64_t& step = progress.step;
  if (history.empty()) {
    // Epoch 0: the untrained encoder's kNN accuracy, the baseline pretraining must beat
    // (random conv features are far above chance on simple images).
    const auto [acc, cos, radial] = knn();
    history.push_back({{"epoch", 0},
                       {"step", 0},
                       {"knn_acc", acc},
                       {"feature_cos", cos},
                       {"feature_radial", radial},
                       {"elapsed_s", 0.0}});
    if (acc >= t.get_float("target_acc")) epochs_to_target = 0;
    if (ctx.progress_mode() != "none")
      spdlog::info("epoch 0 (untrained encoder)  kNN {:.2f}%", acc);
    ctx.write_history(history);
  }
  ctx.write_partial({{"history", history}});
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return progress.elapsed_before + seconds_since(t0); };
  // Everything a later --resume needs, as of `step` (the checkpoint's writes are atomic).
  auto checkpoint = [&] {
    progress.elapsed_now = elapsed();
    save_checkpoint(ctx.dir / kCheckpoint, networks, *parts.b.optimizer, loader, progress,
                    ctx.device);
  };
  auto interrupted = [&] {
    checkpoint();
    spdlog::info("interrupted in epoch {} at step {}; checkpoint written, status 'interrupted' "
                 "(continue with --resume)", progress.epoch, step);
    TaskResult r;
    r.status = TaskStatus::Interrupted;
    r.results = {{"history", history}};
    return r;
  };

  model.train();
  parts.head->train();
  // A checkpoint taken mid-epoch continues that epoch; otherwise start the next one.
  const int64_t first_epoch = progress.next_batch > 0 ? progress.epoch : progress.epoch + 1;
  for (int64_t epoch = first_epoch; epoch <= epochs; ++epoch) {
    if (progress.epoch != epoch || progress.next_batch == 0) {
      progress.epoch = epoch;
      progress.next_batch = 0;
      progress.loss_sum.zero_();
      loader.new_epoch();
    }
    for (int64_t i = progress.next_batch; i < loader.num_batches(); ++i) {
      auto [images, labels] = loader.batch(i);
      (void)labels;
      auto v1 = torch::addcmul(shift, simclr_view(images, crop_min), scale);
      auto v2 = torch::addcmul(shift, simclr_view(images, crop_min), scale);
      if (bf16) cuda::set_bf16_autocast(true);
      auto z = parts.head->forward(model.features(torch::cat({v1, v2}))).to(torch::kFloat);
      if (bf16) cuda::set_bf16_autocast(false);
      auto loss = nt_xent(z.slice(0, 0, images.size(0)), z.slice(0, images.size(0)), tau);
      parts.b.optimizer->zero_grad();
      loss.backward();
      if (clip > 0) train::clip_grad_norm(clip_params, clip);
      parts.b.optimizer->step(parts.b.schedule->lr_at(step++));
      if (bf16) cuda::clear_autocast_cache();
      progress.loss_sum += loss.detach().to(torch::kDouble);
      progress.next_batch = i + 1;
      if (i + 1 < loader.num_batches() && ctx.stop_requested(step)) return interrupted();
    }
    progress.next_batch = 0;
    const double train_loss = progress.loss_sum.item<double>() / loader.num_batches();
    if (!std::isfinite(train_loss)) {
      TaskResult r;
      r.status = TaskStatus::Diverged;
      r.results = {{"diverged_epoch", epoch}, {"history", history}};
      return r;
    }
    nlohmann::json row = {{"epoch", epoch}, {"step", step}, {"train_loss", train_loss}};
    if (epoch % t.get_int("eval_every") == 0 || epoch == epochs) {
      const auto [acc, cos, radial] = knn();
      row["knn_acc"] = acc;
      row["feature_cos"] = cos;
      row["feature_radial"] = radial;
      if (epochs_to_target.is_null() && acc >= t.get_float("target_acc")) epochs_to_target = epoch;
    }
    row["elapsed_s"] = elapsed();
    history.push_back(row);
    ctx.write_history(history);
    ctx.write_partial({{"history", history}});
    if (ctx.progress_mode() != "none")
      spdlog::info("epoch {}/{}  NT-Xent {:.4f}{}  {:.1f}s", epoch, epochs, train_loss,
                   row.contains("knn_acc") ? fmt::format("  kNN {:.2f}%", row["knn_acc"].get<double>()) : "",
                   elapsed());
    if (ctx.stop_requested(step) && epoch < epochs) return interrupted();
    if (epoch == epochs || (checkpoint_every > 0 && epoch % checkpoint_every == 0)) checkpoint();
  }

  // Linear evaluation on frozen features (full-batch features, minibatch SGD, cosine).
  auto ftr = features(train_x), fte = features(test_x);
  torch::nn::Linear linear(ftr.size(1), classes);
  linear->to(ctx.device);
  torch::optim::SGD sgd(linear->parameters(), torch::optim::SGDOptions(t.get_float("linear_lr")).momentum(0.9));
  const int64_t lin_epochs = t.get_int("linear_epochs"), n = ftr.size(0), bs = 256;
  // Standardized features: the linear probe then needs no per-model learning-rate tuning.
  auto mu = ftr.mean(0, true), sd = ftr.std(0, true, true) + 1e-6;
  ftr = (ftr - mu) / sd;
  fte = (fte - mu) / sd;
  const int64_t steps = lin_epochs * ((n + bs - 1) / bs);
  int64_t s = 0;
  for (int64_t e = 0; e < lin_epochs; ++e) {
    auto order = torch::randperm(n, torch::TensorOptions().dtype(torch::kLong).device(ctx.device));
    for (int64_t i = 0; i < n; i += bs, ++s) {
      auto idx = order.slice(0, i, i + bs);
      for (auto& g : sgd.param_groups())
        static_cast<torch::optim::SGDOptions&>(g.options()).lr(
            t.get_float("linear_lr") * 0.5 * (1 + std::cos(M_PI * s / steps)));
      auto loss = F::cross_entropy(linear->forward(ftr.index_select(0, idx)), train_y.index_select(0, idx));
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    }
  }
  double linear_acc = 0;
  {
    torch::NoGradGuard g;
    linear_acc = 100.0 * linear->forward(fte).argmax(1).eq(test_y).sum().item<int64_t>() /
                 static_cast<double>(fte.size(0));
  }
  TaskResult r;
  r.results = {
      {"linear_acc", linear_acc},
      {"knn_acc", history.back().value("knn_acc", 0.0)},
      {"knn_acc_init", history.front().value("knn_acc", 0.0)},
      {"epochs_to_target", epochs_to_target},
      {"target_acc", t.get_float("target_acc")},
      {"train_time_s", elapsed()},
      {"history", history},
  };
  return r;
}

}  // namespace normexp::experiments
