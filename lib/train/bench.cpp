#include "train/bench.h"

#include <torch/torch.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "analysis/flops.h"
#include "analysis/profile.h"
#include "core/error.h"
#include "backend/torch_info.h"
#include "core/version.h"
#include "data/augment.h"
#include "backend/cuda_backend.h"
#include "backend/device.h"
#include "train/components.h"
#include "train/pipeline.h"
#include "train/step.h"

namespace normexp::train {

double percentile(std::vector<double> samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto n = static_cast<double>(samples.size());
  const auto rank = static_cast<size_t>(std::max(1.0, std::ceil(q / 100.0 * n)));
  return samples[std::min(rank, samples.size()) - 1];
}

namespace {

using Clock = std::chrono::steady_clock;

struct Entry {
  const config::Experiment* exp = nullptr;
  Components b;
  BatchPipeline pipeline;
  std::unique_ptr<data::DeviceLoader> loader;
  std::unique_ptr<TrainStep> step;
  int64_t batch = 0, next_batch = 0, global_step = 0;
  double macs_per_image = 0;
  int64_t peak_bytes = 0;
  bool bf16 = false, channels_last = false;
  std::vector<double> step_ms;
  double wall_s = 0;
  int64_t timed_steps = 0;

  void one_step() {
    if (next_batch == loader->num_batches()) {
      loader->new_epoch();
      next_batch = 0;
    }
    auto [images, labels] = loader->batch(next_batch++);
    const int64_t s = global_step++;
    step->run(images, labels, b.schedule->lr_at(s), s + 1);
  }
};

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Forward multiply-accumulates per image, counted on two images in eval mode (no batch
// statistics are updated, nothing is learned).
double forward_macs_per_image(models::ModelImpl& model, const data::DataShape& shape,
                              const c10::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();
  auto x = torch::randn({2, shape.channels, shape.height, shape.width},
                        torch::TensorOptions().device(device));
  const auto count = analysis::count_macs([&] { model.forward(x); });
  model.train();
  return count.total / 2.0;
}

nlohmann::json entry_json(const Entry& e, const c10::Device& device, const BenchOptions& o,
                          int64_t rounds_done) {
  const auto& exp = *e.exp;
  const double images = static_cast<double>(e.timed_steps * e.batch);
  const double ips = e.wall_s > 0 ? images / e.wall_s : 0;
  const double mean_ms =
      e.step_ms.empty() ? 0
                        : std::accumulate(e.step_ms.begin(), e.step_ms.end(), 0.0) / e.step_ms.size();
  // Training FLOPs ~ 3x the forward's (the backward computes input and weight gradients,
  // each about one forward); 2 FLOPs per multiply-accumulate.
  const double train_flops_per_image = 6.0 * e.macs_per_image;
  const nlohmann::json model = exp.resolved()["model"];  // name and every option
  const auto& train_p = exp.section("train");
  const int64_t train_size = e.b.dataset->train_size();
  const double epoch_s = ips > 0 ? static_cast<double>(train_size) / ips : 0;
  nlohmann::json j = {
      {"benchmark", "train_step"},
      {"tool", "normexp"},
      {"config", exp.source},
      {"name", exp.name},
      {"hash", exp.hash()},
      {"model", model},
      {"norm", exp.section("norm").get_string("name")},
      {"optimizer", exp.section("optim").get_string("name")},
      {"augment", exp.section("data").get_string("augment")},
      {"cutout", exp.section("data").get_int("cutout")},
      {"batch_size", e.batch},
      {"bf16", e.bf16},
      {"channels_last", e.channels_last},
      {"cuda_graphs", e.step->graph_status()},
      {"device", backend::describe_device(device)},
      {"versions",
       {{"normexp", normexp_version()}, {"git_commit", git_commit()}, {"libtorch", torch_version()}}},
      {"warmup", e.global_step - e.timed_steps},  // the steps run before the timed ones
      {"rounds", rounds_done},
      {"steps", e.timed_steps},
      {"images_per_s", ips},
      {"steps_per_s", e.wall_s > 0 ? static_cast<double>(e.timed_steps) / e.wall_s : 0},
      {"step_ms",
       {{"mean", mean_ms},
        {"p50", percentile(e.step_ms, 50)},
        {"p95", percentile(e.step_ms, 95)},
        {"min", e.step_ms.empty() ? 0 : *std::min_element(e.step_ms.begin(), e.step_ms.end())},
        {"max", e.step_ms.empty() ? 0 : *std::max_element(e.step_ms.begin(), e.step_ms.end())}}},
      {"peak_memory_bytes", device.is_cuda() ? nlohmann::json(e.peak_bytes) : nlohmann::json()},
      {"parameters", e.b.num_parameters},
      {"forward_gmac_per_image", e.macs_per_image / 1e9},
      {"train_flop_per_image", train_flops_per_image},
      {"train_tflop_per_s", train_flops_per_image * ips / 1e12},
      {"final_loss", e.step->last_loss().item<double>()},
      {"estimate",
       {{"train_size", train_size},
        {"epochs", train_p.get_int("epochs")},
        {"epoch_train_s", epoch_s},
        // Training steps only: evaluation passes and checkpoints come on top.
        {"run_train_hours", epoch_s * static_cast<double>(train_p.get_int("epochs")) / 3600.0}}},
  };
  return j;
}

nlohmann::json rows(const std::vector<std::unique_ptr<Entry>>& entries,
                    const c10::Device& device, const BenchOptions& o, int64_t rounds_done) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : entries) out.push_back(entry_json(*e, device, o, rounds_done));
  const double base = out.front()["images_per_s"].get<double>();
  for (auto& j : out)
    j["relative_to_first"] = base > 0 ? j["images_per_s"].get<double>() / base : 0.0;
  if (!device.is_cuda()) {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    for (auto& j : out) j["process_peak_rss_bytes"] = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  }
  return out;
}

}  // namespace

nlohmann::json bench_training(const std::vector<config::Experiment>& exps,
                              const ComponentFactory& components, const BenchOptions& o) {
  if (exps.empty()) throw std::invalid_argument("bench_training: no config");
  const c10::Device device = backend::resolve_device(exps.front().section("train"));
  for (const auto& exp : exps) {
    const c10::Device d = backend::resolve_device(exp.section("train"));
    if (d != device)
      throw RunError(fmt::format("{} runs on {} but {} on {}: benchmark configs side by side on "
                                 "one device (use --device)",
                                 exp.source, d.str(), exps.front().source, device.str()));
  }
  backend::configure_torch(exps.front().section("train"), exps.front().seed, device);  // threads, cuDNN benchmark, seed

  std::vector<std::unique_ptr<Entry>> entries;
  for (const auto& exp : exps) {
    auto e = std::make_unique<Entry>();
    e->exp = &exp;
    if (device.is_cuda()) cuda::synchronize();
    const int64_t before = cuda::memory_allocated();
    cuda::reset_peak_memory();
    e->b = components.build(exp, device);
    const auto& train_p = exp.section("train");
    const auto shape = e->b.dataset->shape();
    e->batch = train_p.get_int("batch_size");
    e->bf16 = train_p.get_bool("bf16") && device.is_cuda();
    e->channels_last = train_p.get_bool("channels_last");
    e->pipeline = run_pipeline(exp, e->b.dataset->modality());
    e->pipeline.mean.assign(shape.channels, 0.5);  // uniform random pixels
    e->pipeline.std.assign(shape.channels, 0.29);
    if (e->channels_last) use_channels_last(*e->b.model);
    const int64_t n = o.images > 0 ? std::max(o.images, e->batch) : 8 * e->batch;
    const auto on = torch::TensorOptions().device(device);
    const std::vector<int64_t> in_shape{n, shape.channels, shape.height, shape.width};
    auto images = e->pipeline.points ? torch::randn(in_shape, on.dtype(torch::kFloat))  // clouds
                                     : torch::randint(0, 256, in_shape, on.dtype(torch::kUInt8));
    auto labels = torch::randint(0, shape.classes, {n}, on.dtype(torch::kLong));
    e->loader = std::make_unique<data::DeviceLoader>(images, labels, e->batch, /*shuffle=*/true,
                                                     /*drop_last=*/true);
    e->loader->new_epoch();
    e->macs_per_image = forward_macs_per_image(*e->b.model, shape, device);
    StepOptions so = step_options_from(train_p, e->bf16, e->b.dataset->modality());
    e->b.model->train();
    e->step = std::make_unique<TrainStep>(*e->b.model, *e->b.optimizer, e->pipeline, device, so);
    spdlog::info("bench {}: {} ({} parameters, {:.3f} GMAC/image forward), batch {}, warming "
                 "up {} steps",
                 exp.name, exp.section("model").get_string("name"), e->b.num_parameters,
                 e->macs_per_image / 1e9, e->batch, o.warmup);
    for (int64_t i = 0; i < o.warmup; ++i) e->one_step();
    backend::synchronize(device);
    e->peak_bytes = cuda::max_memory_allocated() - before;
    entries.push_back(std::move(e));
  }

  for (int64_t r = 0; r < o.rounds; ++r) {
    for (auto& e : entries) {
      backend::synchronize(device);
      std::unique_ptr<cuda::EventTimeline> timeline;
      if (device.is_cuda()) timeline = std::make_unique<cuda::EventTimeline>();
      const auto t0 = Clock::now();
      auto last = t0;
      if (timeline) timeline->mark();
      for (int64_t s = 0; s < o.steps; ++s) {
        e->one_step();
        if (timeline) {
          timeline->mark();
        } else {
          const auto now = Clock::now();
          e->step_ms.push_back(1e3 * seconds(last, now));
          last = now;
        }
      }
      backend::synchronize(device);
      e->wall_s += seconds(t0, Clock::now());
      e->timed_steps += o.steps;
      if (timeline)
        for (double ms : timeline->intervals_ms()) e->step_ms.push_back(ms);
    }
    spdlog::info("bench round {}/{} done", r + 1, o.rounds);
    if (o.on_round && r + 1 < o.rounds) o.on_round(rows(entries, device, o, r + 1));
  }
  auto out = rows(entries, device, o, o.rounds);
  if (o.profile > 0) {
    // After the timing, so the profiler's own cost is in no timed step. With CUDA graphs
    // the profiled steps are replays, and CUPTI still sees each kernel of the graph.
    if (!o.trace_dir.empty()) std::filesystem::create_directories(o.trace_dir);
    for (size_t i = 0; i < entries.size(); ++i) {
      auto& e = *entries[i];
      const std::string trace =
          o.trace_dir.empty() ? "" : o.trace_dir + "/" + e.exp->name + ".trace.json";
      const auto p = analysis::profile_calls([&] { e.one_step(); }, o.profile, device, trace);
      if (!p.trace_note.empty()) spdlog::warn("{}", p.trace_note);
      out[i]["profile"] = analysis::profile_json(p, o.profile_top);
    }
  }
  if (o.on_round) o.on_round(out);
  return out;
}

}  // namespace normexp::train
