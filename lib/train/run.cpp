#include "train/run.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/torch_compat.h"
#include "core/torch_info.h"
#include "core/version.h"
#include "nn/params.h"
#include "registry/builtin.h"
#include "train/cuda_backend.h"
#include "train/device.h"
#include "train/monitor.h"
#include "train/progress.h"
#include "train/step.h"
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

Built build(const config::Experiment& exp, const c10::Device& device,
            const SchemeDecorator& decorate) {
  IssueCollector collect;

  const Params& data_p = exp.section("data");
  const Params& model_p = exp.section("model");
  const Params& norm_p = exp.section("norm");
  const Params& optim_p = exp.section("optim");
  const Params& sched_p = exp.section("schedule");
  const Params& train_p = exp.section("train");

  Built b;
  collect([&] { b.dataset = registry::datasets().get(data_p.get_string("name")).make(data_p); });
  collect([&] {
    b.scheme = registry::norms().get(norm_p.get_string("name")).make(norm_p);
    if (decorate) b.scheme = decorate(std::move(b.scheme));
  });
  collect([&] { pipeline_from_config(data_p); });  // an unreadable data.policy
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
      collect.add({train_p.where("batch_size"), "train.batch_size",
                        fmt::format("{} is larger than the training set ({} images) with "
                                    "train.drop_last: no step per epoch",
                                    batch, n)});
  }
  b.lr = optim::scaled_lr(optim_p, train_p.get_int("batch_size"));
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
  collect.throw_if_any();
  return b;
}

std::filesystem::path run_dir(const config::Experiment& exp) {
  return std::filesystem::path(exp.section("output").get_string("root")) / exp.name / exp.hash() /
         ("seed" + std::to_string(exp.seed));
}

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
// First signal: finish the step, checkpoint, stop. A second one: stop at once.
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal != 0) std::_Exit(128 + sig);
  g_stop_signal = sig;
}
}  // namespace

SignalScope::SignalScope() {
  g_stop_signal = 0;
  old_int_ = std::signal(SIGINT, on_stop_signal);
  old_term_ = std::signal(SIGTERM, on_stop_signal);
}
SignalScope::~SignalScope() {
  std::signal(SIGINT, old_int_);
  std::signal(SIGTERM, old_term_);
}
bool SignalScope::stop_requested() { return g_stop_signal != 0; }

std::string iso_time_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

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

void setup_torch(const config::Experiment& exp, const c10::Device& device) {
  const Params& train = exp.section("train");
  // Debian's LibTorch starts with one intra-op thread; use every core unless told otherwise.
  const auto threads = train.get_int("threads") > 0
                           ? train.get_int("threads")
                           : std::max<int64_t>(1, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(threads));
  const bool deterministic = train.get_bool("deterministic");
  // cuBLAS is deterministic only with a fixed workspace; LibTorch refuses to run matrix
  // products in deterministic mode without it. Set it unless the user did (before the first
  // cuBLAS handle exists, i.e. before any CUDA matrix product of this process).
  if (deterministic && device.is_cuda()) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
  at::globalContext().setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
  if (device.is_cuda()) cuda::set_cudnn_benchmark(!deterministic);
  torch::manual_seed(static_cast<uint64_t>(exp.seed));
}

namespace {
// The state of the epoch in progress; saved in checkpoints so that a run interrupted
// mid-epoch resumes at the next batch with the same data order and the same running sums.
struct EpochState {
  int64_t epoch = 0;       // 1-based; 0 before the first epoch
  int64_t next_batch = 0;  // index of the next batch of this epoch
  int64_t seen = 0;
  double train_time = 0;  // the running loss and correct sums live in the TrainStep
};

class Run {
 public:
  Run(const config::Experiment& exp, Built built, std::vector<Watch> watches,
      const c10::Device& device, data::ImageData data, std::filesystem::path dir,
      const RunOptions& options)
      : exp_(exp), b_(std::move(built)), device_(device), dir_(std::move(dir)), options_(options) {
    const Params& train = exp.section("train");
    const Params& data_p = exp.section("data");
    epochs_ = train.get_int("epochs");
    max_steps_ = train.get_int("max_steps");
    checkpoint_every_ = train.get_int("checkpoint_every");
    bf16_ = train.get_bool("bf16");
    if (bf16_ && !device_.is_cuda()) {
      spdlog::warn("train.bf16 is ignored on {}: bf16 autocast is used on CUDA only",
                   device_.str());
      bf16_ = false;
    }
    pipeline_ = pipeline_from_config(data_p);
    pipeline_.mean = data.mean;
    pipeline_.std = data.std;
    pipeline_.channels_last = train.get_bool("channels_last");
    if (pipeline_.channels_last) use_channels_last(*b_.model);
    data_description_ = data.description;
    train_loader_ = std::make_unique<data::DeviceLoader>(
        data.train_x.to(device_), data.train_y.to(device_), train.get_int("batch_size"),
        /*shuffle=*/true, train.get_bool("drop_last"));
    test_loader_ = std::make_unique<data::DeviceLoader>(
        data.test_x.to(device_), data.test_y.to(device_), train.get_int("eval_batch_size"),
        /*shuffle=*/false, /*drop_last=*/false);
    progress_ = std::make_unique<Progress>(Progress::parse_mode(train.get_string("progress")),
                                           epochs_);
    StepOptions step_options;
    step_options.bf16 = bf16_;
    step_options.graphs = parse_graph_mode(train.get_string("cuda_graphs"));
    stepper_ = std::make_unique<TrainStep>(*b_.model, *b_.optimizer, pipeline_, device_,
                                           step_options);
    monitor_ = std::make_unique<LayerMonitor>(std::move(watches), train.get_int("monitor_every"),
                                              device_);
    if (monitor_->every() > 0) stepper_->set_observer(monitor_.get());
    started_at_ = iso_time_now();
  }

  // Restores everything from checkpoint.pt and the history up to it from metrics.json.
  void restore() {
    torch::serialize::InputArchive ar;
    ar.load_from((dir_ / kCheckpoint).string());
    auto read = [&](const std::string& key) {
      torch::Tensor t;
      if (!ar.try_read(key, t, /*is_buffer=*/true))
        throw RunError("checkpoint " + (dir_ / kCheckpoint).string() + " lacks '" + key + "'");
      return t;
    };
    {
      torch::NoGradGuard no_grad;
      const auto tensors = model_tensors();
      for (size_t i = 0; i < tensors.size(); ++i) {
        auto t = read("model_" + std::to_string(i));
        if (t.sizes() != tensors[i].sizes())
          throw RunError("checkpoint " + (dir_ / kCheckpoint).string() +
                         " does not match the model (tensor " + std::to_string(i) + ")");
        tensors[i].copy_(t);
      }
    }
    std::map<std::string, torch::Tensor> optim_state;
    const auto n_optim = read("optim_count").item<int64_t>();
    for (int64_t i = 0; i < n_optim; ++i) {
      const auto key = "optim_" + std::to_string(i);
      auto name = read(key + "_name");
      optim_state[std::string(static_cast<const char*>(name.data_ptr()), name.numel())] =
          read(key);
    }
    b_.optimizer->load_state(optim_state);
    auto meta = read("meta");  // int64: step, epoch, next_batch, seen
    step_ = meta[0].item<int64_t>();
    state_.epoch = meta[1].item<int64_t>();
    state_.next_batch = meta[2].item<int64_t>();
    state_.seen = meta[3].item<int64_t>();
    state_.train_time = read("train_time").item<double>();
    stepper_->loss_sum().copy_(read("loss_sum"));
    stepper_->correct().copy_(read("correct"));
    torch::Tensor order;
    if (ar.try_read("order", order, true)) train_loader_->set_order(order.to(device_));
    compat::set_cpu_rng_state(read("rng_cpu"));
    torch::Tensor cuda_state;
    if (device_.is_cuda() && ar.try_read("rng_cuda", cuda_state, true))
      cuda::set_rng_state(cuda_state);

    // History and bookkeeping from the metrics written with (or after) the checkpoint.
    const auto old = nlohmann::json::parse(read_file(dir_ / "metrics.json"));
    const int64_t completed = state_.next_batch == 0 ? state_.epoch : state_.epoch - 1;
    for (const auto& row : old.value("history", nlohmann::json::array()))
      if (row["epoch"].get<int64_t>() <= completed) history_.push_back(row);
    started_at_ = old.value("started_at", started_at_);
    prior_wall_s_ = old.value("wall_time_s", 0.0);
    resumes_ = old.value("resumes", 0) + 1;
    for (const auto& row : history_) epoch_times_.push_back(row["epoch_time_s"].get<double>());
    truncate_diagnostics(step_);
    spdlog::info("resuming {} at epoch {} step {} (batch {} of the epoch)", dir_.string(),
                 std::max<int64_t>(1, state_.epoch + (state_.next_batch == 0 ? 1 : 0)), step_,
                 state_.next_batch);
  }

  RunResult go() {
    started_ = std::chrono::steady_clock::now();
    write_file_atomic(dir_ / "config.yaml", exp_.resolved_yaml());
    write_metrics("running");
    spdlog::info("run {} [{}] seed {} on {} -> {}", exp_.name, exp_.hash(), exp_.seed,
                 describe_device(device_), dir_.string());
    spdlog::info("data: {}; model: {} ({} parameters), norm: {}, lr {}", data_description_,
                 exp_.section("model").get_string("name"), b_.num_parameters,
                 exp_.section("norm").get_string("name"), b_.lr);

    SignalScope signals;
    RunStatus status = RunStatus::Completed;
    // A checkpoint taken mid-epoch continues that epoch; otherwise start the next one.
    int64_t epoch = state_.next_batch > 0 ? state_.epoch : state_.epoch + 1;
    for (; epoch <= epochs_ && !(max_steps_ > 0 && step_ >= max_steps_); ++epoch) {
      status = train_epoch(epoch);
      if (status != RunStatus::Completed) break;
      if (epoch == epochs_ || (checkpoint_every_ > 0 && epoch % checkpoint_every_ == 0))
        write_checkpoint();
    }
    if (status == RunStatus::Completed && (max_steps_ > 0 && step_ >= max_steps_))
      write_checkpoint();
    const std::string final_status = status_name(status);
    write_metrics(final_status);
    RunResult r;
    r.status = status;
    r.dir = dir_;
    r.metrics = metrics_json(final_status);
    return r;
  }

 private:
  static constexpr const char* kCheckpoint = "checkpoint.pt";

  std::vector<torch::Tensor> model_tensors() const {
    std::vector<torch::Tensor> out;
    for (const auto& p : b_.model->named_parameters()) out.push_back(p.value());
    for (const auto& p : b_.model->named_buffers()) out.push_back(p.value());
    return out;
  }

  void write_checkpoint() {
    synchronize(device_);
    torch::serialize::OutputArchive ar;
    const auto tensors = model_tensors();
    for (size_t i = 0; i < tensors.size(); ++i)
      ar.write("model_" + std::to_string(i), tensors[i].detach().cpu(), true);
    const auto optim_state = b_.optimizer->state();
    ar.write("optim_count", torch::tensor(static_cast<int64_t>(optim_state.size())), true);
    for (size_t i = 0; i < optim_state.size(); ++i) {
      const auto key = "optim_" + std::to_string(i);
      const auto& name = optim_state[i].first;
      ar.write(key + "_name",
               torch::from_blob(const_cast<char*>(name.data()), {static_cast<int64_t>(name.size())},
                                torch::kUInt8)
                   .clone(),
               true);
      ar.write(key, optim_state[i].second.detach().cpu(), true);
    }
    ar.write("meta", torch::tensor({step_, state_.epoch, state_.next_batch, state_.seen}), true);
    ar.write("train_time", torch::tensor(state_.train_time, torch::kDouble), true);
    ar.write("loss_sum", stepper_->loss_sum().cpu(), true);
    ar.write("correct", stepper_->correct().cpu(), true);
    if (train_loader_->order().defined()) ar.write("order", train_loader_->order().cpu(), true);
    ar.write("rng_cpu", compat::cpu_rng_state(), true);
    if (device_.is_cuda()) ar.write("rng_cuda", cuda::rng_state(), true);
    std::ostringstream out;
    ar.save_to(out);
    write_file_atomic(dir_ / kCheckpoint, out.str());
  }

  bool stop_requested() const {
    return SignalScope::stop_requested() ||
           (options_.interrupt_at_step > 0 && step_ >= options_.interrupt_at_step);
  }

  RunStatus train_epoch(int64_t epoch) {
    auto& model = *b_.model;
    model.train();
    if (state_.epoch != epoch || state_.next_batch == 0) {
      // A fresh epoch: new order, zeroed sums.
      state_.epoch = epoch;
      state_.next_batch = 0;
      state_.seen = 0;
      state_.train_time = 0;
      stepper_->reset_sums();
      train_loader_->new_epoch();
    }
    const int64_t steps = train_loader_->num_batches();
    const auto t0 = std::chrono::steady_clock::now();
    double lr = b_.schedule->lr_at(std::max<int64_t>(0, step_ - 1));
    for (int64_t& i = state_.next_batch; i < steps;) {
      if (max_steps_ > 0 && step_ >= max_steps_) break;
      auto [images, labels] = train_loader_->batch(i);
      lr = b_.schedule->lr_at(step_);
      stepper_->run(images, labels, lr, step_ + 1);
      state_.seen += labels.size(0);
      ++step_;
      ++i;
      if (progress_->due()) {
        const double l = stepper_->last_loss().item<double>();
        if (!std::isfinite(l)) return diverged(epoch, images, labels);
        progress_->draw(epoch, i, steps, l, eta(epoch, static_cast<double>(i) / steps));
      }
      if (stop_requested() && i < steps) {
        state_.train_time += seconds_since(t0);
        return interrupted(epoch);
      }
    }
    synchronize(device_);
    state_.train_time += seconds_since(t0);
    const double train_time = state_.train_time;
    const int64_t seen = state_.seen;
    const double train_loss = seen ? stepper_->loss_sum().item<double>() / seen : 0.0;
    if (!std::isfinite(train_loss)) return diverged(epoch, train_loader_->batch(0));

    const auto e0 = std::chrono::steady_clock::now();
    const EvalResult test = evaluate(model, *test_loader_, pipeline_, bf16_);
    const double eval_time = seconds_since(e0);
    if (!std::isfinite(test.loss)) return diverged(epoch, train_loader_->batch(0));
    nlohmann::json row = {
        {"epoch", epoch},
        {"step", step_},
        {"lr", lr},
        {"train_loss", train_loss},
        {"train_err",
         seen ? 100.0 * (1.0 - static_cast<double>(stepper_->correct().item<int64_t>()) / seen)
              : 0.0},
        {"test_loss", test.loss},
        {"test_err", test.top1_err},
        {"test_acc", 100.0 - test.top1_err},  // file 000 reports accuracy
        {"test_top5_err", test.top5_err},
        {"epoch_time_s", train_time + eval_time},
        {"train_time_s", train_time},
        {"images_per_s", train_time > 0 ? seen / train_time : 0.0},
        {"elapsed_s", prior_wall_s_ + seconds_since(started_)},
    };
    state_.next_batch = 0;  // the epoch is complete
    if (auto rows = monitor_->take_rows(); !rows.empty()) {
      append_diagnostics(rows);
      row["monitor"] = rows.back();  // the epoch's last sample (history.jsonl only)
    }
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
    if (stop_requested() && epoch < epochs_) return interrupted(epoch + 1);
    return RunStatus::Completed;
  }

  RunStatus interrupted(int64_t epoch) {
    append_diagnostics(monitor_->take_rows());  // samples up to the checkpoint's step
    write_checkpoint();
    progress_->epoch_done(fmt::format(
        "interrupted in epoch {} at step {}; checkpoint written, status 'interrupted' "
        "(continue with: normexp run {} --resume{})",
        epoch, step_, exp_.source, exp_.seed ? " --seed " + std::to_string(exp_.seed) : ""));
    return RunStatus::Interrupted;
  }

  RunStatus diverged(int64_t epoch, const std::pair<at::Tensor, at::Tensor>& batch) {
    return diverged(epoch, batch.first, batch.second);
  }

  // Records where the divergence started: the exact step (kept on the device), and the first
  // layer whose output or gradient was non-finite: at that step when the monitor checked every
  // step, otherwise in a post-mortem forward/backward of `images` with the diverged weights.
  RunStatus diverged(int64_t epoch, const at::Tensor& images, const at::Tensor& labels) {
    diverged_epoch_ = epoch;
    append_diagnostics(monitor_->take_rows());  // the samples up to the blow-up
    const int64_t first_step = stepper_->first_nonfinite_step().item<int64_t>();
    nlohmann::json d = {{"epoch", epoch}, {"step", first_step >= 0 ? first_step : step_}};
    if (monitor_->every() > 0) {
      d["method"] = "train.monitor_every: every layer checked at every step";
    } else {
      d["method"] =
          "post-mortem: one forward/backward of a training batch with the weights after the "
          "divergence (set train.monitor_every to catch the layer at the step itself)";
      monitor_->checked_pass(step_, [&] { stepper_->forward_backward(images, labels); });
    }
    d["first_nonfinite"] = monitor_->first_nonfinite();
    for (const auto& p : b_.optimizer->params())
      if (!p.tensor.isfinite().all().item<bool>()) {
        d["first_nonfinite_parameter"] = p.name;
        break;
      }
    divergence_ = d;
    std::string where;
    if (d["first_nonfinite"].contains("output"))
      where = fmt::format("; first non-finite output: {} (step {})",
                          d["first_nonfinite"]["output"]["layer"].get<std::string>(),
                          d["first_nonfinite"]["output"]["step"].get<int64_t>());
    if (d.contains("first_nonfinite_parameter"))
      where += "; first non-finite parameter: " + d["first_nonfinite_parameter"].get<std::string>();
    progress_->epoch_done(fmt::format("epoch {}: non-finite loss at step {}{}; stopping (status "
                                      "'diverged', details in metrics.json 'divergence')",
                                      epoch, d["step"].get<int64_t>(), where));
    return RunStatus::Diverged;
  }

  // diagnostics.jsonl: one line per sampled step (train.monitor_every), appended as epochs end.
  void append_diagnostics(const std::vector<nlohmann::json>& rows) const {
    if (rows.empty()) return;
    std::string text;
    for (const auto& r : rows) text += r.dump() + "\n";
    append_file(dir_ / "diagnostics.jsonl", text);
  }

  // A resumed run re-samples the steps after its checkpoint: drop them (and a line cut short by
  // a kill) so that no step appears twice.
  void truncate_diagnostics(int64_t last_step) const {
    const auto path = dir_ / "diagnostics.jsonl";
    if (!std::filesystem::exists(path)) return;
    std::istringstream in(read_file(path));
    std::string line, kept;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).at("step").get<int64_t>() <= last_step) kept += line + "\n";
      } catch (const std::exception&) {
      }
    }
    write_file_atomic(path, kept);
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
    if (!divergence_.is_null()) m["divergence"] = divergence_;
    m["history"] = nlohmann::json::array();
    for (auto row : history_) {
      row.erase("monitor");  // per-layer samples stay in history.jsonl and diagnostics.jsonl
      m["history"].push_back(std::move(row));
    }
    m["effective"] = {{"lr", b_.lr},
                      {"bf16", bf16_},
                      {"cuda_graphs", stepper_->graph_status()},
                      {"steps_per_epoch", b_.steps_per_epoch},
                      {"parameters", b_.num_parameters}};
    m["versions"] = {{"normexp", normexp_version()},
                     {"git_commit", git_commit()},
                     {"libtorch", torch_version()}};
    m["device"] = describe_device(device_);
    m["started_at"] = started_at_;
    m["updated_at"] = iso_time_now();
    m["resumes"] = resumes_;
    m["wall_time_s"] = prior_wall_s_ + seconds_since(started_);
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
  RunOptions options_;
  BatchPipeline pipeline_;
  std::unique_ptr<data::DeviceLoader> train_loader_, test_loader_;
  std::unique_ptr<Progress> progress_;
  std::unique_ptr<TrainStep> stepper_;  // after b_ and pipeline_, which it refers to
  std::unique_ptr<LayerMonitor> monitor_;
  nlohmann::json divergence_;
  std::string data_description_, started_at_;
  std::chrono::steady_clock::time_point started_;
  std::vector<nlohmann::json> history_;
  std::vector<double> epoch_times_;
  EpochState state_;
  int64_t epochs_ = 0, max_steps_ = 0, checkpoint_every_ = 0, step_ = 0, diverged_epoch_ = 0;
  int resumes_ = 0;
  double prior_wall_s_ = 0;
  bool bf16_ = false;
};
}  // namespace

RunResult run(const config::Experiment& exp, const RunOptions& options) {
  const c10::Device device = resolve_device(exp.section("train"));
  setup_torch(exp, device);

  // Every conv, norm and classifier inside a Watch (train.monitor_every, divergence reports).
  MonitoredScheme* monitored = nullptr;
  Built built = build(exp, device, [&](std::unique_ptr<nn::NormScheme> scheme) {
    auto m = std::make_unique<MonitoredScheme>(std::move(scheme));
    monitored = m.get();
    return m;
  });  // every config problem surfaces before anything is written
  const auto dir = run_dir(exp);
  const bool exists = std::filesystem::exists(dir);
  if (exists && !options.resume) claim_dir(dir);  // throws with the existing run's status
  if (exists && options.resume && std::filesystem::exists(dir / "metrics.json")) {
    auto old = nlohmann::json::parse(read_file(dir / "metrics.json"));
    const std::string status = old.value("status", "unknown");
    if (status == "completed" || status == "diverged") {
      spdlog::info("{} is already {}; nothing to resume", dir.string(), status);
      RunResult r;
      r.status = status == "completed" ? RunStatus::Completed : RunStatus::Diverged;
      r.dir = dir;
      r.metrics = std::move(old);
      return r;
    }
  }
  data::ImageData data = built.dataset->load();
  if (!exists) claim_dir(dir);
  auto watches = monitored ? monitored->watches() : std::vector<Watch>{};
  Run r(exp, std::move(built), std::move(watches), device, std::move(data), dir, options);
  if (exists && std::filesystem::exists(dir / "checkpoint.pt")) {
    r.restore();
  } else if (exists) {
    spdlog::info("{} has no checkpoint yet; starting the run from the beginning", dir.string());
  }
  return r.go();
}

}  // namespace normexp::train
