#include "train/run.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <ctime>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/torch_info.h"
#include "core/version.h"
#include "nn/params.h"
#include "registry/builtin.h"
#include "train/cuda_backend.h"
#include "train/device.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace normexp::train {


using config::Params;

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Completed: return "completed";
    case RunStatus::Diverged: return "diverged";
    case RunStatus::Interrupted: return "interrupted";
  }
  return "?";
}

Built build(const config::Experiment& exp, const c10::Device& device) {
  std::vector<ConfigIssue> issues;
  auto collect = [&](auto&& fn) {
    try {
      fn();
    } catch (const ConfigError& e) {
      issues.insert(issues.end(), e.issues().begin(), e.issues().end());
    }
  };
  const Params& data_p = exp.section("data");
  const Params& model_p = exp.section("model");
  const Params& norm_p = exp.section("norm");
  const Params& optim_p = exp.section("optim");
  const Params& sched_p = exp.section("schedule");
  const Params& train_p = exp.section("train");

  Built b;
  collect([&] { b.dataset = registry::datasets().get(data_p.get_string("name")).make(data_p); });
  collect([&] { b.scheme = registry::norms().get(norm_p.get_string("name")).make(norm_p); });
  if (b.dataset && b.scheme) {
    collect([&] {
      b.model = registry::models().get(model_p.get_string("name"))
                    .make(model_p, b.dataset->shape(), *b.scheme);
    });
  }
  if (b.dataset) {
    const int64_t n = b.dataset->train_size(), batch = train_p.get_int("batch_size");
    b.steps_per_epoch = train_p.get_bool("drop_last") ? n / batch : (n + batch - 1) / batch;
    if (b.steps_per_epoch == 0)
      issues.push_back({train_p.where("batch_size"), "train.batch_size",
                        fmt::format("{} is larger than the training set ({} images) with "
                                    "train.drop_last: no step per epoch",
                                    batch, n)});
  }
  b.lr = optim_p.get_float("lr");
  if (optim_p.has("scale_lr") && optim_p.get_bool("scale_lr"))
    b.lr *= static_cast<double>(train_p.get_int("batch_size")) / optim_p.get_int("base_batch");
  collect([&] {
    optim::ScheduleContext ctx{b.lr, std::max<int64_t>(1, b.steps_per_epoch),
                               train_p.get_int("epochs")};
    b.schedule = registry::lr_schedules().get(sched_p.get_string("name")).make(sched_p, ctx);
  });
  if (b.model) {
    b.model->to(device);
    auto params = nn::classify_parameters(*b.model);
    for (const auto& p : params) b.num_parameters += p.tensor.numel();
    collect([&] {
      b.optimizer = registry::optimizers().get(optim_p.get_string("name")).make(optim_p, params);
    });
  }
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return b;
}

std::filesystem::path run_dir(const config::Experiment& exp) {
  return std::filesystem::path(exp.section("output").get_string("root")) / exp.name / exp.hash() /
         ("seed" + std::to_string(exp.seed));
}

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

// Installs SIGINT/SIGTERM handlers for the duration of a run, restores the old ones after.
class SignalScope {
 public:
  SignalScope() {
    g_stop_signal = 0;
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

std::string iso_time_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Claims the run directory: creating the leaf is atomic, so two runs started at once with the
// same config and seed cannot both write there.
void claim_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (ec) throw RunError("cannot create " + dir.parent_path().string() + ": " + ec.message());
  if (!std::filesystem::create_directory(dir, ec)) {
    if (ec) throw RunError("cannot create " + dir.string() + ": " + ec.message());
    std::string status = "unknown";
    try {
      status = nlohmann::json::parse(read_file(dir / "metrics.json")).value("status", "unknown");
    } catch (const std::exception&) {
    }
    throw RunExistsError("results directory " + dir.string() + " already holds a run (status: " +
                         status +
                         "); runs are never overwritten: use another --seed or output.root, or "
                         "delete the directory");
  }
}

class Run {
 public:
  Run(const config::Experiment& exp, Built built, const c10::Device& device,
      data::ImageData data, std::filesystem::path dir)
      : exp_(exp), b_(std::move(built)), device_(device), dir_(std::move(dir)) {
    const Params& train = exp.section("train");
    const Params& data_p = exp.section("data");
    epochs_ = train.get_int("epochs");
    max_steps_ = train.get_int("max_steps");
    bf16_ = train.get_bool("bf16");
    if (bf16_ && !device_.is_cuda()) {
      spdlog::warn("train.bf16 is ignored on {}: bf16 autocast is used on CUDA only",
                   device_.str());
      bf16_ = false;
    }
    pipeline_.augment = data_p.get_string("augment") == "standard";
    pipeline_.normalize = data_p.get_bool("normalize");
    pipeline_.mean = data.mean;
    pipeline_.std = data.std;
    pipeline_.channels_last = train.get_bool("channels_last");
    data_description_ = data.description;
    train_loader_ = std::make_unique<data::DeviceLoader>(
        data.train_x.to(device_), data.train_y.to(device_), train.get_int("batch_size"),
        /*shuffle=*/true, train.get_bool("drop_last"));
    test_loader_ = std::make_unique<data::DeviceLoader>(
        data.test_x.to(device_), data.test_y.to(device_), train.get_int("eval_batch_size"),
        /*shuffle=*/false, /*drop_last=*/false);
    progress_ = std::make_unique<Progress>(Progress::parse_mode(train.get_string("progress")),
                                           epochs_);
  }

  RunResult go() {
    started_ = std::chrono::steady_clock::now();
    started_at_ = iso_time_now();
    write_file_atomic(dir_ / "config.yaml", exp_.resolved_yaml());
    write_metrics("running");
    spdlog::info("run {} [{}] seed {} on {} -> {}", exp_.name, exp_.hash(), exp_.seed,
                 describe_device(device_), dir_.string());
    spdlog::info("data: {}; model: {} ({} parameters), norm: {}, lr {}", data_description_,
                 exp_.section("model").get_string("name"), b_.num_parameters,
                 exp_.section("norm").get_string("name"), b_.lr);

    SignalScope signals;
    RunStatus status = RunStatus::Completed;
    for (int64_t epoch = 1; epoch <= epochs_; ++epoch) {
      status = train_epoch(epoch);
      if (status != RunStatus::Completed) break;
      if (max_steps_ > 0 && step_ >= max_steps_) break;
    }
    const std::string final_status = status_name(status);
    write_metrics(final_status);
    RunResult r;
    r.status = status;
    r.dir = dir_;
    r.metrics = metrics_json(final_status);
    return r;
  }

 private:
  RunStatus train_epoch(int64_t epoch) {
    auto& model = *b_.model;
    model.train();
    train_loader_->new_epoch();
    const int64_t steps = train_loader_->num_batches();
    const auto t0 = std::chrono::steady_clock::now();
    auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
    auto correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device_));
    int64_t seen = 0;
    double lr = 0;
    bool interrupted = false;
    for (int64_t i = 0; i < steps; ++i) {
      if (max_steps_ > 0 && step_ >= max_steps_) break;
      auto [images, labels] = train_loader_->batch(i);
      auto x = pipeline_.prepare(images, /*train=*/true);
      lr = b_.schedule->lr_at(step_);
      if (bf16_) cuda::set_bf16_autocast(true);
      auto logits = model.forward(x).to(torch::kFloat);
      if (bf16_) cuda::set_bf16_autocast(false);
      auto loss = torch::nn::functional::cross_entropy(logits, labels);
      b_.optimizer->zero_grad();
      loss.backward();
      b_.optimizer->step(lr);
      if (bf16_) cuda::clear_autocast_cache();
      const int64_t n = labels.size(0);
      loss_sum.add_(loss.detach().to(torch::kDouble), static_cast<double>(n));
      correct.add_(logits.detach().argmax(1).eq(labels).sum());
      seen += n;
      ++step_;
      if (progress_->due()) {
        const double l = loss.item<double>();
        if (!std::isfinite(l)) return diverged(epoch);
        progress_->draw(epoch, i + 1, steps, l, eta(epoch, (i + 1.0) / steps));
      }
      if (g_stop_signal) {
        interrupted = true;
        break;
      }
    }
    synchronize(device_);
    const double train_time = seconds_since(t0);
    const double train_loss = seen ? loss_sum.item<double>() / seen : 0.0;
    if (!std::isfinite(train_loss)) return diverged(epoch);
    if (interrupted) {
      spdlog::warn("interrupted by signal {} in epoch {} after step {}; status 'interrupted'",
                   static_cast<int>(g_stop_signal), epoch, step_);
      return RunStatus::Interrupted;
    }

    const auto e0 = std::chrono::steady_clock::now();
    const EvalResult test = evaluate(model, *test_loader_, pipeline_, bf16_);
    const double eval_time = seconds_since(e0);
    nlohmann::json row = {
        {"epoch", epoch},
        {"step", step_},
        {"lr", lr},
        {"train_loss", train_loss},
        {"train_err", seen ? 100.0 * (1.0 - static_cast<double>(correct.item<int64_t>()) / seen)
                           : 0.0},
        {"test_loss", test.loss},
        {"test_err", test.top1_err},
        {"test_top5_err", test.top5_err},
        {"epoch_time_s", train_time + eval_time},
        {"train_time_s", train_time},
        {"images_per_s", train_time > 0 ? seen / train_time : 0.0},
        {"elapsed_s", seconds_since(started_)},
    };
    if (!std::isfinite(test.loss)) return diverged(epoch);
    history_.push_back(row);
    epoch_times_.push_back(train_time + eval_time);
    write_history();
    write_metrics("running");
    progress_->epoch_done(fmt::format(
        "epoch {}/{}  train loss {:.4f} err {:.2f}%  test loss {:.4f} err {:.2f}% top5 {:.2f}%  "
        "lr {:.4g}  {:.1f}s  {:.0f} img/s  ETA {}",
        epoch, epochs_, train_loss, row["train_err"].get<double>(), test.loss, test.top1_err,
        test.top5_err, lr, train_time + eval_time, row["images_per_s"].get<double>(),
        format_duration(eta(epoch + 1, 0.0))));
    return RunStatus::Completed;
  }

  RunStatus diverged(int64_t epoch) {
    diverged_epoch_ = epoch;
    progress_->epoch_done(fmt::format("epoch {}: non-finite loss at step {}; stopping (status "
                                      "'diverged')",
                                      epoch, step_));
    return RunStatus::Diverged;
  }

  // Remaining time: mean epoch time so far (or the current epoch's pace) x epochs left.
  double eta(int64_t epoch, double fraction_done) const {
    double per_epoch = 0;
    if (!epoch_times_.empty()) {
      for (double t : epoch_times_) per_epoch += t;
      per_epoch /= epoch_times_.size();
    } else if (fraction_done > 0) {
      per_epoch = seconds_since(started_) / fraction_done;
    } else {
      return -1;
    }
    return per_epoch * ((epochs_ - epoch) + (1.0 - fraction_done));
  }

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  nlohmann::json metrics_json(const std::string& status) const {
    nlohmann::json m;
    m["name"] = exp_.name;
    m["hash"] = exp_.hash();
    m["seed"] = exp_.seed;
    m["status"] = status;
    m["config"] = exp_.resolved();
    m["config_file"] = exp_.source;
    m["epochs_completed"] = history_.size();
    m["steps"] = step_;
    m["final"] = history_.empty() ? nlohmann::json(nullptr) : history_.back();
    if (!history_.empty()) {
      size_t best = 0;
      for (size_t i = 1; i < history_.size(); ++i)
        if (history_[i]["test_err"].get<double>() < history_[best]["test_err"].get<double>())
          best = i;
      m["best"] = {{"test_err", history_[best]["test_err"]},
                   {"test_top5_err", history_[best]["test_top5_err"]},
                   {"epoch", history_[best]["epoch"]}};
    } else {
      m["best"] = nullptr;
    }
    if (diverged_epoch_ > 0) m["diverged_epoch"] = diverged_epoch_;
    m["history"] = history_;
    m["effective"] = {{"lr", b_.lr},
                      {"bf16", bf16_},
                      {"steps_per_epoch", b_.steps_per_epoch},
                      {"parameters", b_.num_parameters}};
    m["versions"] = {{"normexp", normexp_version()},
                     {"git_commit", git_commit()},
                     {"libtorch", torch_version()}};
    m["device"] = describe_device(device_);
    m["started_at"] = started_at_;
    m["updated_at"] = iso_time_now();
    m["wall_time_s"] = seconds_since(started_);
    return m;
  }

  void write_metrics(const std::string& status) const {
    write_file_atomic(dir_ / "metrics.json", metrics_json(status).dump(2) + "\n");
  }

  void write_history() const {
    std::string text;
    for (const auto& row : history_) text += row.dump() + "\n";
    write_file_atomic(dir_ / "history.jsonl", text);
  }

  const config::Experiment& exp_;
  Built b_;
  c10::Device device_;
  std::filesystem::path dir_;
  BatchPipeline pipeline_;
  std::unique_ptr<data::DeviceLoader> train_loader_, test_loader_;
  std::unique_ptr<Progress> progress_;
  std::string data_description_, started_at_;
  std::chrono::steady_clock::time_point started_;
  std::vector<nlohmann::json> history_;
  std::vector<double> epoch_times_;
  int64_t epochs_ = 0, max_steps_ = 0, step_ = 0, diverged_epoch_ = 0;
  bool bf16_ = false;
};
}  // namespace

RunResult run(const config::Experiment& exp) {
  const Params& train = exp.section("train");
  // Debian's LibTorch starts with one intra-op thread; use every core unless told otherwise.
  const auto threads = train.get_int("threads") > 0
                           ? train.get_int("threads")
                           : std::max<int64_t>(1, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(threads));
  const c10::Device device = resolve_device(train);
  const bool deterministic = train.get_bool("deterministic");
  at::globalContext().setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
  if (device.is_cuda()) cuda::set_cudnn_benchmark(!deterministic);
  torch::manual_seed(static_cast<uint64_t>(exp.seed));

  Built built = build(exp, device);  // every config problem surfaces before anything is written
  const auto dir = run_dir(exp);
  if (std::filesystem::exists(dir)) claim_dir(dir);  // throws with the existing run's status
  data::ImageData data = built.dataset->load();
  claim_dir(dir);
  Run r(exp, std::move(built), device, std::move(data), dir);
  return r.go();
}

}  // namespace normexp::train
