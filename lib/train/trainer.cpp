#include "train/trainer.h"

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <map>
#include <utility>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "backend/cuda_backend.h"
#include "backend/device.h"
#include "backend/torch_compat.h"
#include "core/fs.h"
#include "data/jpeg_loader.h"
#include "nn/layers.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/tensorboard_log.h"

namespace normexp::train {

namespace {
constexpr const char* kCheckpoint = "checkpoint.pt";

// TensorBoard tag -> history row key.
constexpr std::pair<const char*, const char*> kTensorBoardScalars[] = {
    {"train/loss", "train_loss"},   {"train/err", "train_err"},
    {"test/loss", "test_loss"},     {"test/err", "test_err"},
    {"test/acc", "test_acc"},       {"test/top5_err", "test_top5_err"},
    {"test/top5_acc", "test_top5_acc"}, {"test/mean_class_acc", "test_mean_class_acc"},
    {"lr", "lr"},                   {"images_per_s", "images_per_s"},
    {"epoch_time_s", "epoch_time_s"}, {"epoch", "epoch"}};
}  // namespace

Trainer::Trainer(const config::Experiment& exp, Components components, std::vector<Watch> watches,
                 const c10::Device& device, data::ImageData data, RunDirectory& dir,
                 std::function<bool(int64_t)> stop_requested, const DataParallel* data_parallel)
    : exp_(exp), c_(std::move(components)), dp_(data_parallel), device_(device), dir_(dir),
      stop_requested_(std::move(stop_requested)) {
  const config::Params& train = exp.section("train");
  epochs_ = train.get_int("epochs");
  max_steps_ = train.get_int("max_steps");
  checkpoint_every_ = train.get_int("checkpoint_every");
  bf16_ = train.get_bool("bf16");
  tensorboard_ = exp.section("output").get_bool("tensorboard");
  start_unix_ = unix_now();
  if (bf16_ && !device_.is_cuda()) {
    spdlog::warn("train.bf16 is ignored on {}: bf16 autocast is used on CUDA only", device_.str());
    bf16_ = false;
  }
  pipeline_ = run_pipeline(exp, data.modality);
  pipeline_.mean = data.mean;
  pipeline_.std = data.std;
  classes_ = data.shape.classes;
  if (pipeline_.channels_last) use_channels_last(*c_.model);
  data_description_ = data.description;
  if (data.modality == data::Modality::Files) {
    // Decoded, cropped and flipped on the host by the loader's workers (run_pipeline leaves
    // the device pipeline only the normalization).
    data::JpegLoaderOptions o;
    o.workers = data.files->workers;
    o.prefetch = data.files->prefetch;
    o.device = device_;
    o.augment = data.files->augment;
    o.augment.train = exp.section("data").get_string("augment") != "none";
    o.batch_size = train.get_int("batch_size");
    o.shuffle = true;
    o.drop_last = train.get_bool("drop_last");
    train_loader_ = std::make_unique<data::JpegLoader>(data.files->train, o);
    o.augment.train = false;
    o.batch_size = train.get_int("eval_batch_size");
    o.shuffle = o.drop_last = false;
    test_loader_ = std::make_unique<data::JpegLoader>(data.files->test, o);
  } else {
    train_loader_ = std::make_unique<data::DeviceLoader>(
        data.train_x.to(device_), data.train_y.to(device_), train.get_int("batch_size"),
        /*shuffle=*/true, train.get_bool("drop_last"));
    test_loader_ = std::make_unique<data::DeviceLoader>(
        data.test_x.to(device_), data.test_y.to(device_), train.get_int("eval_batch_size"),
        /*shuffle=*/false, /*drop_last=*/false);
  }
  train_loader_->set_repeats(exp.section("data").get_int("repeated_aug"));
  if (dp_) {
    train_loader_->shard(dp_->rank(), dp_->world(), /*keep_small_last=*/false);
    test_loader_->shard(dp_->rank(), dp_->world(), /*keep_small_last=*/true);
  }
  const bool speaks = !dp_ || dp_->is_root();
  progress_ = std::make_unique<Progress>(
      speaks ? Progress::parse_mode(train.get_string("progress")) : Progress::Mode::None,
      epochs_);
  StepOptions step_options = step_options_from(train, bf16_, data.modality);
  if (dp_ && step_options.graphs != GraphMode::Off) {
    // The gradient all-reduce runs between backward and update, outside any graph.
    say_graphs_off(step_options.graphs,
                   fmt::format("train.cuda_graphs is off in a data-parallel run (world size "
                               "{}): the gradient all-reduce is not captured",
                               dp_->world()));
    step_options.graphs = GraphMode::Off;
  }
  stepper_ =
      std::make_unique<TrainStep>(*c_.model, *c_.optimizer, pipeline_, device_, step_options);
  if (dp_) {
    stepper_->set_gradient_sync(
        [dp = dp_, params = c_.model->parameters()] { dp->sum_gradients(params); });
  }
  monitor_ = std::make_unique<LayerMonitor>(std::move(watches), train.get_int("monitor_every"),
                                            device_);
  if (monitor_->every() > 0) stepper_->set_observer(monitor_.get());
}

Trainer::~Trainer() = default;

bool Trainer::restore() {
  const auto path = dir_.path() / kCheckpoint;
  if (!std::filesystem::exists(path)) return false;
  const std::string source = path.string();
  const Checkpoint ck = Checkpoint::load(path);
  ck.restore_model(*c_.model, source);
  c_.optimizer->load_state(ck.optimizer);
  auto at = [&](const std::string& key) { return ck.progress_at(key, source); };
  step_ = at("step").item<int64_t>();
  state_.epoch = at("epoch").item<int64_t>();
  state_.next_batch = at("next_batch").item<int64_t>();
  state_.seen = at("seen").item<int64_t>();
  state_.train_time = at("train_time").item<double>();
  stepper_->loss_sum().copy_(at("loss_sum"));
  stepper_->correct().copy_(at("correct"));
  if (ck.progress.count("order")) train_loader_->set_order(ck.progress.at("order").to(device_));
  const int64_t saved_world = ck.progress.count("world_size") ? at("world_size").item<int64_t>() : 1;
  const int64_t world = dp_ ? dp_->world() : 1;
  if (saved_world != world)
    throw RunError(fmt::format("cannot resume {}: its checkpoint is of a run with {} rank(s), "
                               "this one has {}; resume it with the world size it started with",
                               source, saved_world, world));
  if (dp_) {
    // The sums in the checkpoint are every rank's: rank 0 carries them on, the others add.
    if (!dp_->is_root()) {
      state_.seen = 0;
      stepper_->reset_sums();
    }
    compat::set_cpu_rng_state(at("rng_cpu_ranks")[dp_->rank()].contiguous());
    if (device_.is_cuda() && ck.progress.count("rng_cuda_ranks"))
      cuda::set_rng_state(ck.progress.at("rng_cuda_ranks")[dp_->rank()].contiguous());
  } else {
    ck.restore_rng_states(device_, source);
  }

  // History and bookkeeping from the metrics written with (or after) the checkpoint.
  const nlohmann::json& old = dir_.previous();
  const int64_t completed = state_.next_batch == 0 ? state_.epoch : state_.epoch - 1;
  if (old.is_object()) {
    for (const auto& row : old.value("history", nlohmann::json::array()))
      if (row["epoch"].get<int64_t>() <= completed) history_.push_back(row);
    dir_.set_started_at(old.value("started_at", dir_.started_at()));
    prior_wall_s_ = old.value("wall_time_s", 0.0);
    resumes_ = old.value("resumes", 0) + 1;
  }
  for (const auto& row : history_) epoch_times_.push_back(row["epoch_time_s"].get<double>());
  if (!history_.empty() && history_.front().contains("wall_time"))  // the run's first start
    start_unix_ = history_.front()["wall_time"].get<double>() -
                  history_.front()["elapsed_s"].get<double>();
  truncate_diagnostics(step_);
  spdlog::info("resuming {} at epoch {} step {} (batch {} of the epoch)", dir_.path().string(),
               std::max<int64_t>(1, state_.epoch + (state_.next_batch == 0 ? 1 : 0)), step_,
               state_.next_batch);
  return true;
}

RunStatus Trainer::fit() {
  write_progress("running");
  spdlog::info("run {} [{}] seed {} on {} -> {}", exp_.name, exp_.hash(), exp_.seed,
               backend::describe_device(device_), dir_.path().string());
  spdlog::info("data: {}; model: {} ({} parameters), norm: {}, lr {}", data_description_,
               exp_.section("model").get_string("name"), c_.num_parameters,
               exp_.section("norm").get_string("name"), c_.lr);

  if (dp_) {
    dp_->broadcast_model(*c_.model);  // one starting point (also after a restore)
    nn::set_data_init_group(*c_.model, dp_->shared_group());  // cwo's norm.init: data
  }
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
  write_progress(status_name(status));
  return status;
}

void Trainer::write_checkpoint() {
  backend::synchronize(device_);
  at::Tensor loss_sum = stepper_->loss_sum().cpu(), correct = stepper_->correct().cpu();
  int64_t seen = state_.seen;
  at::Tensor rng_ranks, rng_cuda_ranks;
  if (dp_) {  // collectives first, on every rank; then only rank 0 writes
    if (!sums_reduced_) {
      auto seen_t = torch::tensor(seen);
      std::vector<at::Tensor> sums{loss_sum.clone(), correct.clone(), seen_t};
      dp_->sum(sums);
      loss_sum = sums[0];
      correct = sums[1];
      seen = sums[2].item<int64_t>();
    }
    rng_ranks = dp_->gather(compat::cpu_rng_state());
    if (device_.is_cuda()) rng_cuda_ranks = dp_->gather(cuda::rng_state());
    if (!dp_->is_root()) return;
  }
  Checkpoint ck;
  ck.set_model(*c_.model);
  ck.set_optimizer(*c_.optimizer);
  auto scalar = [](int64_t v) { return torch::tensor(v); };
  ck.progress = {{"step", scalar(step_)},
                 {"epoch", scalar(state_.epoch)},
                 {"next_batch", scalar(state_.next_batch)},
                 {"seen", scalar(seen)},
                 {"train_time", torch::tensor(state_.train_time, torch::kDouble)},
                 {"loss_sum", loss_sum},
                 {"correct", correct}};
  ck.set_rng_states(device_);
  if (train_loader_->order().defined()) ck.progress["order"] = train_loader_->order().cpu();
  if (dp_) {
    ck.progress["world_size"] = scalar(dp_->world());
    ck.progress["rng_cpu_ranks"] = rng_ranks;
    if (rng_cuda_ranks.defined()) ck.progress["rng_cuda_ranks"] = rng_cuda_ranks;
  }
  ck.save(dir_.path() / kCheckpoint);
}

RunStatus Trainer::train_epoch(int64_t epoch) {
  auto& model = *c_.model;
  model.train();
  if (state_.epoch != epoch || state_.next_batch == 0) {
    // A fresh epoch: new order, zeroed sums.
    state_.epoch = epoch;
    state_.next_batch = 0;
    state_.seen = 0;
    state_.train_time = 0;
    stepper_->reset_sums();
    train_loader_->new_epoch();
    if (dp_ && train_loader_->order().defined()) {  // rank 0's order: one permutation
      at::Tensor order = train_loader_->order().to(device_);  // NCCL: device tensors
      dp_->broadcast(order);
      train_loader_->set_order(order);
    }
  }
  sums_reduced_ = false;
  const int64_t steps = train_loader_->num_batches();
  const auto t0 = std::chrono::steady_clock::now();
  double lr = c_.schedule->lr_at(std::max<int64_t>(0, step_ - 1));
  for (int64_t& i = state_.next_batch; i < steps;) {
    if (max_steps_ > 0 && step_ >= max_steps_) break;
    auto [images, labels] = train_loader_->batch(i);
    lr = c_.schedule->lr_at(step_);
    if (dp_)
      stepper_->set_loss_weight(static_cast<double>(labels.size(0)) /
                                static_cast<double>(train_loader_->global_batch_size(i)));
    stepper_->run(images, labels, lr, step_ + 1);
    state_.seen += labels.size(0);
    ++step_;
    ++i;
    if (progress_->due()) {
      const double l = stepper_->last_loss().item<double>();
      if (!dp_ && !std::isfinite(l)) return diverged(epoch, images, labels);
      progress_->draw(epoch, i, steps, l, eta(epoch, static_cast<double>(i) / steps));
    }
    bool stop = false;
    if (!dp_) {
      stop = stop_requested_(step_);
    } else if (step_ % kAgreeEvery == 0 && i < steps) {
      const double l = stepper_->last_loss().item<double>();
      const auto agreed = dp_->any({stop_requested_(step_), !std::isfinite(l)});
      if (agreed[1]) return diverged(epoch, images, labels);
      stop = agreed[0];
    }
    if (stop && i < steps) {
      state_.train_time += seconds_since(t0);
      return interrupted(epoch);
    }
  }
  backend::synchronize(device_);
  state_.train_time += seconds_since(t0);
  if (dp_) reduce_epoch_sums();
  const double train_time = state_.train_time;
  const int64_t seen = state_.seen;
  const double train_loss = seen ? stepper_->loss_sum().item<double>() / seen : 0.0;
  if (!std::isfinite(train_loss)) {
    auto [images, labels] = train_loader_->batch(0);
    return diverged(epoch, images, labels);
  }

  const auto e0 = std::chrono::steady_clock::now();
  at::Tensor test_sums = evaluate_sums(model, *test_loader_, pipeline_, bf16_, classes_);
  if (dp_) {
    std::vector<at::Tensor> sums{test_sums};
    dp_->sum(sums);
  }
  const EvalResult test = eval_result(test_sums);
  const double eval_time = seconds_since(e0);
  if (!std::isfinite(test.loss)) {
    auto [images, labels] = train_loader_->batch(0);
    return diverged(epoch, images, labels);
  }
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
      {"test_acc", 100.0 - test.top1_err},  // Band-constrained normalization reports accuracy
      {"test_top5_err", test.top5_err},
      {"test_top5_acc", 100.0 - test.top5_err},  // ImageNet tables report top-5 accuracy
      {"test_mean_class_acc", test.mean_class_acc},  // ModelNet40 reports it
      {"epoch_time_s", train_time + eval_time},
      {"train_time_s", train_time},
      {"images_per_s", train_time > 0 ? seen / train_time : 0.0},
      {"elapsed_s", prior_wall_s_ + dir_.seconds_running()},
      {"wall_time", unix_now()},  // seconds since 1970 (TensorBoard's x axis in "wall" mode)
  };
  state_.next_batch = 0;  // the epoch is complete
  if (auto rows = monitor_->take_rows(); !rows.empty()) {
    append_diagnostics(rows);
    row["monitor"] = rows.back();  // the epoch's last sample (history.jsonl only)
  }
  history_.push_back(row);
  epoch_times_.push_back(train_time + eval_time);
  std::string history_text;
  for (const auto& r : history_) history_text += r.dump() + "\n";
  dir_.write_file("history.jsonl", history_text);
  write_progress("running");
  progress_->epoch_done(fmt::format(
      "epoch {}/{}  train loss {:.4f} err {:.2f}%  test loss {:.4f} err {:.2f}% top5 {:.2f}%  "
      "lr {:.4g}  {:.1f}s  {:.0f} img/s  ETA {}",
      epoch, epochs_, train_loss, row["train_err"].get<double>(), test.loss, test.top1_err,
      test.top5_err, lr, train_time + eval_time, row["images_per_s"].get<double>(),
      format_duration(eta(epoch + 1, 0.0))));
  const bool stop = dp_ ? dp_->any({stop_requested_(step_)})[0] : stop_requested_(step_);
  if (stop && epoch < epochs_) return interrupted(epoch + 1);
  return RunStatus::Completed;
}

void Trainer::reduce_epoch_sums() {
  if (sums_reduced_) return;
  auto seen = torch::tensor(state_.seen).to(device_);
  std::vector<at::Tensor> sums{stepper_->loss_sum(), stepper_->correct(), seen};
  dp_->sum(sums);
  state_.seen = seen.item<int64_t>();
  sums_reduced_ = true;
}

RunStatus Trainer::interrupted(int64_t epoch) {
  append_diagnostics(monitor_->take_rows());  // samples up to the checkpoint's step
  write_checkpoint();
  progress_->epoch_done(fmt::format(
      "interrupted in epoch {} at step {}; checkpoint written, status 'interrupted' "
      "(continue with: normexp run {} --resume)",
      epoch, step_, (dir_.path() / "config.yaml").string()));  // name, seed, --sets, root
  return RunStatus::Interrupted;
}

// Records where the divergence started: the exact step (kept on the device), and the first
// layer whose output or gradient was non-finite: at that step when the monitor checked every
// step, otherwise in a post-mortem forward/backward of `images` with the diverged weights.
RunStatus Trainer::diverged(int64_t epoch, const at::Tensor& images, const at::Tensor& labels) {
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
  for (const auto& p : c_.optimizer->params())
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
void Trainer::append_diagnostics(const std::vector<nlohmann::json>& rows) const {
  if (rows.empty()) return;
  std::string text;
  for (const auto& r : rows) text += r.dump() + "\n";
  dir_.append_file("diagnostics.jsonl", text);
}

// A resumed run re-samples the steps after its checkpoint: drop them (and a line cut short by
// a kill) so that no step appears twice.
void Trainer::truncate_diagnostics(int64_t last_step) const {
  const auto path = dir_.path() / "diagnostics.jsonl";
  if (!std::filesystem::exists(path)) return;
  std::istringstream in(read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).at("step").get<int64_t>() <= last_step) kept += line + "\n";
    } catch (const std::exception&) {
    }
  }
  dir_.write_file("diagnostics.jsonl", kept);
}

// Remaining time: mean epoch time so far (or the current epoch's pace) x epochs left.
double Trainer::eta(int64_t epoch, double fraction_done) const {
  double per_epoch = 0;
  if (!epoch_times_.empty()) {
    for (double t : epoch_times_) per_epoch += t;
    per_epoch /= epoch_times_.size();
  } else if (fraction_done > 0) {
    per_epoch = dir_.seconds_running() / fraction_done;
  } else {
    return -1;
  }
  return per_epoch * ((epochs_ - epoch) + (1.0 - fraction_done));
}

nlohmann::json Trainer::metrics(const std::string& status) const {
  nlohmann::json m;
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
  m["effective"] = {{"lr", c_.lr},
                    {"bf16", bf16_},
                    {"cuda_graphs", stepper_->graph_status()},
                    {"steps_per_epoch", train_loader_->num_batches()},
                    {"parameters", c_.num_parameters},
                    {"world_size", dp_ ? dp_->world() : 1}};
  if (dp_) {
    m["effective"]["distributed_backend"] = dp_->group().backend();
    m["effective"]["gradient_allreduce_s"] = dp_->gradient_sync_seconds();  // this attempt's
  }
  m["resumes"] = resumes_;
  return dir_.metrics(status, m, prior_wall_s_);
}

void Trainer::write_progress(const std::string& status) const {
  dir_.write_metrics(metrics(status));
  if (tensorboard_ && dir_.writes()) write_tensorboard(status);
}

// events.out.tfevents.normexp, rewritten whole from the history after every epoch.
void Trainer::write_tensorboard(const std::string& status) const {
  static const TensorBoardTags tags(std::begin(kTensorBoardScalars), std::end(kTensorBoardScalars));
  write_tensorboard_log(dir_.path(), exp_, start_unix_, history_,
                        status == "completed" || status == "diverged" ? status : "running", tags);
}

}  // namespace normexp::train
