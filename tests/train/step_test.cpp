// TrainStep (the step `run` and `bench` share), CUDA graphs and `normexp bench`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis/flops.h"
#include "core/fs.h"
#include "support/cli.h"
#include "support/ml_support.h"
#include "train/bench.h"
#include "backend/cuda_backend.h"
#include "compose/components.h"
#include "compose/run.h"
#include "train/step.h"

namespace normexp::train {
namespace {

// A tiny model and its data on `device`, for driving TrainStep directly.
struct Rig {
  testing::TempDir dir;
  config::Experiment exp;
  Components b;
  BatchPipeline pipeline;
  at::Tensor images, labels;

  Rig(const c10::Device& device, const std::vector<std::string>& sets)
      : exp(testing::experiment_from(dir, testing::kTinyYaml, sets)) {
    torch::manual_seed(0);
    b = compose::build(exp, device);
    pipeline = pipeline_from_config(exp.section("data"));
    pipeline.mean.assign(3, 0.5);
    pipeline.std.assign(3, 0.25);
    auto data = b.dataset->load();
    images = data.train_x.slice(0, 0, 128).to(device);
    labels = data.train_y.slice(0, 0, 128).to(device);
  }
  // Per-step losses of `steps` steps over 32-image batches (the same batches for every call).
  std::vector<double> train(TrainStep& step, int steps) {
    std::vector<double> losses;
    for (int s = 0; s < steps; ++s) {
      const int64_t i = (s % 4) * 32;
      step.run(images.slice(0, i, i + 32), labels.slice(0, i, i + 32), b.schedule->lr_at(s),
               s + 1);
      losses.push_back(step.last_loss().item<double>());
    }
    return losses;
  }
};

TEST(TrainStep, SumsLossAndCorrectOnTheDeviceAndLearns) {
  Rig rig(torch::kCPU, {"data.augment=none"});
  TrainStep step(*rig.b.model, *rig.b.optimizer, rig.pipeline, torch::kCPU, StepOptions{});
  EXPECT_EQ(step.graph_status(), "off");
  const auto losses = rig.train(step, 24);
  double sum = 0;
  for (double l : losses) sum += 32 * l;
  EXPECT_NEAR(step.loss_sum().item<double>(), sum, 1e-6 * sum);
  const auto correct = step.correct().item<int64_t>();
  EXPECT_GE(correct, 0);
  EXPECT_LE(correct, 24 * 32);
  EXPECT_LT(losses.back(), losses.front());
  step.reset_sums();
  EXPECT_EQ(step.loss_sum().item<double>(), 0.0);
  EXPECT_EQ(step.correct().item<int64_t>(), 0);
}

// train.label_smoothing reaches the step's loss as (1 - e) CE + e mean_k(-log p_k), computed
// here from the model's own logits. Catches the option not reaching the step (e > 0 moves the
// loss by over 100x the tolerance) and a different mixture.
TEST(TrainStep, LabelSmoothingMixesCrossEntropyWithTheUniformTarget) {
  for (double eps : {0.0, 0.1, 0.4}) {
    Rig rig(torch::kCPU, {"data.augment=none", fmt::format("train.label_smoothing={}", eps)});
    const auto options = step_options_from(rig.exp.section("train"), /*bf16=*/false, data::Modality::Images);
    ASSERT_EQ(options.label_smoothing, eps);
    const auto x = rig.images.slice(0, 0, 32), y = rig.labels.slice(0, 0, 32);
    double nll = 0, expected = 0;
    {
      torch::NoGradGuard no_grad;
      const auto logp =
          torch::log_softmax(rig.b.model->forward(rig.pipeline.prepare(x, /*train=*/true)), 1);
      nll = -logp.gather(1, y.unsqueeze(1)).mean().item<double>();
      expected = (1 - eps) * nll + eps * -logp.mean().item<double>();
    }
    if (eps > 0) ASSERT_GT(std::abs(expected - nll), 1e-3);  // 100x the tolerance: telling apart
    TrainStep step(*rig.b.model, *rig.b.optimizer, rig.pipeline, torch::kCPU, options);
    step.run(x, y, /*lr=*/0.0, 1);
    EXPECT_NEAR(step.last_loss().item<double>(), expected, 1e-5) << "label_smoothing " << eps;
  }
}

// The global norm over all gradients, not per tensor: (3, 0, 0) and ((0, 4), (0, 0)) have norm
// 5; clipping to 1 scales both by 1/5, clipping to 10 leaves them alone; tensors without a
// gradient are skipped.
TEST(ClipGradNorm, ScalesAllGradientsByOneFactorOnlyAboveTheMaximum) {
  auto make = [] {
    auto a = torch::zeros({3}, torch::requires_grad()), b = torch::zeros({2, 2}, torch::requires_grad());
    a.mutable_grad() = torch::tensor({3.0f, 0.0f, 0.0f});
    b.mutable_grad() = torch::tensor({0.0f, 4.0f, 0.0f, 0.0f}).view({2, 2});
    return std::vector<at::Tensor>{a, b, torch::zeros({1}, torch::requires_grad())};
  };
  auto p = make();
  EXPECT_NEAR(clip_grad_norm(p, 1.0).item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(p[0].grad()[0].item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(p[1].grad()[0][1].item<double>(), 0.8, 1e-6);
  EXPECT_FALSE(p[2].grad().defined());
  auto q = make();
  EXPECT_NEAR(clip_grad_norm(q, 10.0).item<double>(), 5.0, 1e-6);
  EXPECT_EQ(q[0].grad()[0].item<double>(), 3.0);
  EXPECT_EQ(q[1].grad()[0][1].item<double>(), 4.0);
}

// train.clip_grad_norm reaches the update: with plain SGD (no momentum, no decay) one step
// moves the parameters by exactly lr x the clipped norm, against > 10x that unclipped.
TEST(TrainStep, ClippedStepMovesTheParametersByLrTimesTheMaximum) {
  auto displacement = [](double clip) {
    Rig rig(torch::kCPU, {"data.augment=none", "norm.name=bn", "optim.momentum=0",
                          "optim.weight_decay=0", fmt::format("train.clip_grad_norm={}", clip)});
    std::vector<at::Tensor> before;
    for (const auto& p : rig.b.optimizer->params()) before.push_back(p.tensor.detach().clone());
    TrainStep step(*rig.b.model, *rig.b.optimizer, rig.pipeline, torch::kCPU,
                   step_options_from(rig.exp.section("train"), false, data::Modality::Images));
    step.run(rig.images.slice(0, 0, 32), rig.labels.slice(0, 0, 32), /*lr=*/0.5, 1);
    double sq = 0;
    for (size_t i = 0; i < before.size(); ++i)
      sq += (rig.b.optimizer->params()[i].tensor.detach() - before[i]).pow(2).sum().item<double>();
    return std::sqrt(sq);
  };
  const double clipped = displacement(0.01), free = displacement(0.0);
  EXPECT_NEAR(clipped, 0.5 * 0.01, 1e-4 * 0.5 * 0.01);
  EXPECT_GT(free, 10 * clipped);
}

// Asking for graphs where there are none (CPU) runs eagerly with the device-LR update, says
// why, and trains the same as the plain step.
// The trainer and `bench` both take their device pipeline from run_pipeline: streamed JPEGs
// are only normalized there (the loader's threads crop and flip them) and clouds are augmented
// as clouds. Catches a bench that times a crop a run never does, or the reverse.
TEST(RunPipeline, FollowsTheModalityAndTheTrainSection) {
  testing::TempDir dir;
  const auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                            {"data.augment=standard", "train.channels_last=true"});
  const auto images = run_pipeline(exp, data::Modality::Images);
  EXPECT_TRUE(images.augment);
  EXPECT_FALSE(images.points);
  EXPECT_TRUE(images.channels_last);
  const auto files = run_pipeline(exp, data::Modality::Files);
  EXPECT_FALSE(files.augment);
  EXPECT_TRUE(files.normalize);
  const auto clouds = run_pipeline(exp, data::Modality::Points);
  EXPECT_TRUE(clouds.points);
  EXPECT_TRUE(clouds.augment);
  const auto plain = testing::experiment_from(dir, testing::kTinyYaml, {"data.augment=none"});
  EXPECT_FALSE(run_pipeline(plain, data::Modality::Images).augment);
  EXPECT_FALSE(run_pipeline(plain, data::Modality::Images).channels_last);
}

// run and bench take their step options from one place: a run streaming JPEGs never
// captures (its loader threads' pinned-memory calls may break a global-mode capture), and its
// bench must not time a graphed step either. Catches the rule living in one of the two only.
TEST(StepOptions, StreamedFilesNeverCaptureInRunOrBench) {
  testing::TempDir dir;
  const auto exp = testing::experiment_from(dir, testing::kTinyYaml, {"train.cuda_graphs=on"});
  const auto& train = exp.section("train");
  EXPECT_EQ(step_options_from(train, false, data::Modality::Images).graphs, GraphMode::On);
  EXPECT_EQ(step_options_from(train, false, data::Modality::Points).graphs, GraphMode::On);
  EXPECT_EQ(step_options_from(train, false, data::Modality::Files).graphs, GraphMode::Off);
}

TEST(TrainStep, GraphsOnCpuFallBackToEagerWithTheReason) {
  std::vector<double> plain, asked;
  std::string status;
  for (GraphMode mode : {GraphMode::Off, GraphMode::On}) {
    Rig rig(torch::kCPU, {"norm.noise.schedule=constant", "norm.noise.sigma=0.2"});
    StepOptions o;
    o.graphs = mode;
    TrainStep step(*rig.b.model, *rig.b.optimizer, rig.pipeline, torch::kCPU, o);
    torch::manual_seed(7);
    (mode == GraphMode::Off ? plain : asked) = rig.train(step, 8);
    EXPECT_FALSE(step.graphed());
    status = step.graph_status();
  }
  EXPECT_NE(status.find("eager: CUDA graphs need a CUDA device"), std::string::npos) << status;
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(plain[i], asked[i], 1e-5) << "step " << i;
}

TEST(TrainStep, AnOptimizerWithHostStateIsNotCaptured) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  Rig rig(torch::kCUDA, {"optim.name=adamw", "optim.weight_decay=0.01"});
  StepOptions o;
  o.graphs = GraphMode::On;
  TrainStep step(*rig.b.model, *rig.b.optimizer, rig.pipeline, torch::kCUDA, o);
  rig.train(step, 6);
  EXPECT_FALSE(step.graphed());
  EXPECT_NE(step.graph_status().find("AdamW"), std::string::npos);
}

// The captured step replays what the eager step does: same losses on a fixed seed, with the
// LR schedule moving under replay, cwo's projection and the noise layers inside the graph.
TEST(TrainStep, CapturedGraphGivesTheEagerLosses) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  // The last case also clips the gradient norm, smooths the labels, applies random erasing and
  // mixup/CutMix (device-side Beta and Bernoulli draws), all inside the graph.
  for (const char* augment : {"none", "standard", "standard+clip"}) {
    const bool clip = std::string(augment) == "standard+clip";
    if (clip) augment = "standard";
    std::vector<double> eager, graphed;
    for (GraphMode mode : {GraphMode::Off, GraphMode::On}) {
      // cuDNN's default (not benchmarked) algorithms in both runs; atomics in some backward
      // kernels still differ in the last bits, hence a tolerance.
      std::vector<std::string> sets{std::string("data.augment=") + augment,
                                    "norm.noise.schedule=constant", "norm.noise.sigma=0.2"};
      if (clip)
        sets.insert(sets.end(), {"data.mixup=0.8", "data.cutmix=1.0", "data.random_erasing=0.25"});
      Rig rig(torch::kCUDA, sets);
      StepOptions o;
      o.graphs = mode;
      o.warmup = 2;
      if (clip) {
        o.clip_grad_norm = 0.05;
        o.label_smoothing = 0.1;
      }
      TrainStep step(*rig.b.model, *rig.b.optimizer, rig.pipeline, torch::kCUDA, o);
      torch::manual_seed(11);
      (mode == GraphMode::Off ? eager : graphed) = rig.train(step, 12);
      if (mode == GraphMode::On) EXPECT_TRUE(step.graphed()) << step.graph_status();
    }
    for (size_t i = 0; i < eager.size(); ++i)
      EXPECT_NEAR(graphed[i], eager[i], 2e-3 * std::abs(eager[i]) + 1e-5)
          << "augment " << augment << (clip ? " with clipping, erasing and mixing" : "")
          << ", step " << i;
  }
}

// A capture that the body breaks (here with a host synchronization) leaves CUDA as it was
// before: the eager fallback's random ops work, and a later capture succeeds and draws fresh
// numbers at every replay. Catches the random generator left "capturing" by LibTorch's
// capture_end, which throws before ending it (the next eager torch::rand then throws).
TEST(CudaGraph, AFailedCaptureLeavesRandomOpsAndLaterCapturesWorking) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  const auto on = torch::TensorOptions().device(torch::kCUDA);
  const auto x = torch::ones({1024}, on);
  {
    cuda::Graph broken;
    EXPECT_THROW(broken.capture([&] {
      const auto r = torch::rand({1024}, on) + x;
      (void)r.sum().item<float>();  // a host synchronization: not capturable
    }),
                 std::runtime_error);
  }
  at::Tensor a, b;
  ASSERT_NO_THROW(a = torch::rand({1024}, on));
  ASSERT_NO_THROW(b = torch::rand({1024}, on));
  EXPECT_FALSE(torch::equal(a, b));
  at::Tensor out;
  cuda::Graph graph;
  ASSERT_NO_THROW(graph.capture([&] { out = torch::rand({1024}, on) * x; }));
  graph.replay();
  const auto first = out.clone();
  graph.replay();
  EXPECT_FALSE(torch::equal(first, out));
  EXPECT_TRUE(out.ge(0).logical_and(out.lt(1)).all().item<bool>());
}

TEST(TrainStep, RunRecordsWhetherItsStepsWereGraphed) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, testing::kTinyYaml,
      {"output.root=" + (dir.path() / "res").string(), "train.epochs=1", "train.cuda_graphs=on",
       "train.device=auto"});
  const auto result = compose::run_experiment(exp);
  ASSERT_EQ(result.status, RunStatus::Completed);
  const std::string status = result.metrics["effective"]["cuda_graphs"];
  if (torch::cuda::is_available())
    EXPECT_EQ(status.rfind("captured at step 4", 0), 0u) << status;
  else
    EXPECT_EQ(status.rfind("eager: CUDA graphs need a CUDA device", 0), 0u) << status;
}

// The fast path end to end on CUDA: bf16, channels_last, graphs; it learns, and a run
// interrupted mid-epoch resumes to completion (recapturing its graph).
TEST(CudaRun, FastPathLearnsAndResumes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, testing::kTinyYaml,
      {"output.root=" + (dir.path() / "res").string(), "train.device=cuda", "train.epochs=6",
       "train.bf16=true", "train.channels_last=true", "train.cuda_graphs=on", "optim.lr=0.2",
       "norm.noise.schedule=constant", "norm.noise.sigma=0.1"});
  compose::RunOptions interrupt;
  interrupt.interrupt_at_step = 13;
  auto first = compose::run_experiment(exp, interrupt);
  ASSERT_EQ(first.status, RunStatus::Interrupted);
  compose::RunOptions resume;
  resume.resume = true;
  auto second = compose::run_experiment(exp, resume);
  ASSERT_EQ(second.status, RunStatus::Completed);
  const auto& h = second.metrics["history"];
  ASSERT_EQ(h.size(), 6u);
  EXPECT_LT(h[5]["train_loss"].get<double>(), h[0]["train_loss"].get<double>());
  EXPECT_LT(h[5]["test_err"].get<double>(), 60.0);  // 4 classes: chance is 75 %
  EXPECT_EQ(second.metrics["effective"]["bf16"], true);
  const std::string graphs = second.metrics["effective"]["cuda_graphs"];
  EXPECT_EQ(graphs.rfind("captured", 0), 0u) << graphs;
}

// Resuming restores the CUDA RNG (the noise layers' draws, the device-side augmentation's
// crops and flips) as well as the weights: an interrupted and resumed run ends where the
// uninterrupted one does. Catches a checkpoint that saves only the CPU generator — the resumed
// epochs would then draw different noise and crops, and their losses would part by far more
// than the last-bit nondeterminism of atomics left in some CUDA kernels (eager steps, no bf16,
// deterministic cuDNN: that is all that may differ). Run::InterruptAndResumeEqualsAnUninterruptedRun
// is the CPU version, exact.
TEST(CudaRun, ResumedRunEndsWhereTheUninterruptedOneDoes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  auto run = [](bool interrupted) {
    testing::TempDir dir;
    auto exp = testing::experiment_from(
        dir, testing::kTinyYaml,
        {"output.root=" + (dir.path() / "res").string(), "train.device=cuda", "train.epochs=4",
         "train.cuda_graphs=off", "train.deterministic=true", "data.augment=standard",
         "norm.noise.schedule=constant", "norm.noise.sigma=0.3"});
    if (interrupted) {
      compose::RunOptions interrupt;
      interrupt.interrupt_at_step = 9;
      EXPECT_EQ(compose::run_experiment(exp, interrupt).status, RunStatus::Interrupted);
      compose::RunOptions resume;
      resume.resume = true;
      return compose::run_experiment(exp, resume).metrics;
    }
    return compose::run_experiment(exp).metrics;
  };
  const auto straight = run(false);
  const auto resumed = run(true);
  ASSERT_EQ(resumed["history"].size(), straight["history"].size());
  for (size_t e = 0; e < straight["history"].size(); ++e) {
    const double a = straight["history"][e]["train_loss"], b = resumed["history"][e]["train_loss"];
    EXPECT_NEAR(b, a, 1e-4 * std::abs(a)) << "epoch " << e;
  }
}

TEST(Bench, PercentileIsNearestRank) {
  EXPECT_EQ(percentile({}, 50), 0.0);
  EXPECT_EQ(percentile({5, 1, 3, 2, 4}, 50), 3.0);
  EXPECT_EQ(percentile({5, 1, 3, 2, 4}, 95), 5.0);
  EXPECT_EQ(percentile({5, 1, 3, 2, 4}, 0), 1.0);
  EXPECT_EQ(percentile({10, 20}, 50), 10.0);
}

TEST(Bench, MeasuresEveryConfigInterleavedWithConsistentFigures) {
  testing::TempDir dir;
  const std::vector<std::string> sets = {"train.device=cpu"};
  std::vector<config::Experiment> exps;
  exps.push_back(testing::experiment_from(dir, testing::kTinyYaml, sets));
  auto bn = sets;
  bn.push_back("norm.name=bn");
  testing::TempDir dir2;
  exps.push_back(testing::experiment_from(dir2, testing::kTinyYaml, bn));
  BenchOptions o;
  o.warmup = 2;
  o.steps = 3;
  o.rounds = 2;
  // The rows so far after every round (what `bench --out` writes, so a killed bench keeps
  // its finished rounds): after the first, 3 steps each; after the last, what is returned.
  std::vector<nlohmann::json> seen;
  o.on_round = [&](const nlohmann::json& rows) { seen.push_back(rows); };
  const auto rows = bench_training(exps, compose::components(), o);
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_EQ(seen[0].size(), 2u);
  for (const auto& r : seen[0]) {
    EXPECT_EQ(r["steps"], 3);
    EXPECT_EQ(r["rounds"], 1);
    EXPECT_GT(r["images_per_s"].get<double>(), 0);
  }
  EXPECT_EQ(seen[1], rows);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["norm"], "cwo");
  EXPECT_EQ(rows[1]["norm"], "bn");
  for (const auto& r : rows) {
    EXPECT_EQ(r["steps"], 6);
    EXPECT_EQ(r["warmup"], 2);  // untimed steps first: allocation and tuning not timed
    EXPECT_EQ(r["batch_size"], 32);
    const auto& ms = r["step_ms"];
    EXPECT_GT(r["images_per_s"].get<double>(), 0);
    EXPECT_LE(ms["min"].get<double>(), ms["p50"].get<double>());
    EXPECT_LE(ms["p50"].get<double>(), ms["p95"].get<double>());
    EXPECT_LE(ms["p95"].get<double>(), ms["max"].get<double>());
    // images/s from the wall clock and from the per-step times agree (CPU: nothing queued).
    EXPECT_NEAR(r["images_per_s"].get<double>() * ms["mean"].get<double>() / 1e3, 32.0, 3.2);
    EXPECT_TRUE(r["peak_memory_bytes"].is_null());  // CPU
    EXPECT_TRUE(std::isfinite(r["final_loss"].get<double>()));
    // TFLOP/s is 6 x forward MACs x images/s.
    EXPECT_NEAR(r["train_tflop_per_s"].get<double>(),
                6e-3 * r["forward_gmac_per_image"].get<double>() * r["images_per_s"].get<double>(),
                1e-12);
    EXPECT_EQ(r["estimate"]["train_size"], 256);
    // The run estimate: the training set at the measured rate, times train.epochs (3).
    const auto& est = r["estimate"];
    EXPECT_NEAR(est["epoch_train_s"].get<double>() * r["images_per_s"].get<double>(), 256.0,
                1e-9);
    EXPECT_NEAR(est["run_train_hours"].get<double>() * 3600.0,
                3 * est["epoch_train_s"].get<double>(), 1e-9);
    // In bytes: a process running LibTorch holds far more than 20 MiB.
    EXPECT_GT(r["process_peak_rss_bytes"].get<int64_t>(), int64_t{20} << 20);
  }
  // Forward MACs per image: the model's count on a single image, counted here apart from
  // bench's probe (which counts a batch of two).
  {
    auto b = compose::build(exps[0], c10::Device(c10::kCPU));
    b.model->eval();
    torch::NoGradGuard no_grad;
    const auto one = analysis::count_macs([&] { b.model->forward(torch::rand({1, 3, 8, 8})); });
    ASSERT_GT(one.total, 0);
    EXPECT_NEAR(rows[0]["forward_gmac_per_image"].get<double>() * 1e9, one.total,
                1e-9 * one.total);
  }
  // The same architecture: the same forward MACs, and ratios relative to the first config.
  EXPECT_DOUBLE_EQ(rows[0]["forward_gmac_per_image"].get<double>(),
                   rows[1]["forward_gmac_per_image"].get<double>());
  EXPECT_EQ(rows[0]["relative_to_first"], 1.0);
  EXPECT_NEAR(rows[1]["relative_to_first"].get<double>(),
              rows[1]["images_per_s"].get<double>() / rows[0]["images_per_s"].get<double>(), 1e-12);
}

// bench times the step a run of the config takes: for streamed ImageNet JPEGs no CUDA graph
// (even when asked) and no device-side crop (the loader's threads crop). Here on CPU, where
// a graph request would otherwise be reported as "needs a CUDA device".
TEST(Bench, AStreamedImageNetConfigIsTimedAsItsRunSteps) {
  testing::TempDir dir;
  const auto exp = testing::experiment_from(
      dir, "name: inet\ndata: {name: imagenet, root: " + (dir.path() / "none").string() +
               ", image_size: 32, resize: 36}\nmodel: {name: cnn9, width: 0.125}\n"
               "norm: {name: bn}\ntrain: {batch_size: 4, device: cpu, cuda_graphs: on, "
               "threads: 1}\n");
  BenchOptions o;
  o.warmup = 1;
  o.steps = 2;
  o.rounds = 1;
  const auto rows = bench_training({exp}, compose::components(), o);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["cuda_graphs"], "off");
  EXPECT_GT(rows[0]["images_per_s"].get<double>(), 0);
}

// `bench --profile`: one profiled call is one training step, forward and backward. A profile
// of the wrong steps (the timed ones, or none), not divided by the calls, or missing the
// backward fails the counts below.
TEST(Bench, ProfilesOneStepPerCallForwardAndBackward) {
  testing::TempDir dir;
  const auto exp = testing::experiment_from(dir, testing::kTinyYaml, {"norm.name=bn"});
  int64_t convs = 0;
  const auto built = compose::components().build(exp, torch::Device(torch::kCPU));
  for (const auto& m : built.model->modules(/*include_self=*/false))
    if (dynamic_cast<torch::nn::Conv2dImpl*>(m.get())) ++convs;
  ASSERT_GT(convs, 3);
  BenchOptions o;
  o.warmup = 1;
  o.steps = 2;
  o.rounds = 1;
  o.profile = 3;
  o.profile_top = 1000;
  const auto rows = bench_training({exp}, compose::components(), o);
  ASSERT_TRUE(rows[0].contains("profile")) << rows[0].dump(1);
  const auto& p = rows[0]["profile"];
  EXPECT_EQ(p["calls"], 3);
  auto per_call = [&](const std::string& name) {
    for (const auto& r : p["rows"])
      if (r["name"] == name) return r["calls_per_call"].get<double>();
    return 0.0;
  };
  EXPECT_DOUBLE_EQ(per_call("aten::conv2d"), static_cast<double>(convs)) << p.dump(1);
  EXPECT_DOUBLE_EQ(per_call("aten::convolution_backward"), static_cast<double>(convs));
  EXPECT_DOUBLE_EQ(per_call("aten::cross_entropy_loss"), 1.0);
  // Only `profile_top` rows are kept.
  o.profile_top = 2;
  EXPECT_EQ(bench_training({exp}, compose::components(), o)[0]["profile"]["rows"].size(), 2u);
}

// auto, the default, means "where possible": a config that cannot use graphs (streamed JPEGs)
// says so at info level; only an explicit `on` warns.
TEST(BenchCli, OnlyAnExplicitOnWarnsThatGraphsAreOff) {
  testing::TempDir dir;
  const auto cfg = dir.write(
      "inet.yaml", "name: inet\ndata: {name: imagenet, root: " + (dir.path() / "none").string() +
                       ", image_size: 32, resize: 36}\nmodel: {name: cnn9, width: 0.125}\n"
                       "norm: {name: bn}\ntrain: {batch_size: 4, device: cpu, threads: 1}\n");
  const std::string args = " --warmup 1 --steps 1 --rounds 1";
  const std::string said = "train.cuda_graphs is off: the images stream";
  const auto quiet = testing::normexp("bench " + cfg.string() + args);
  ASSERT_EQ(quiet.code, 0) << quiet.out;
  EXPECT_NE(quiet.out.find("info " + said), std::string::npos) << quiet.out;
  EXPECT_EQ(quiet.out.find("warning " + said), std::string::npos) << quiet.out;
  const auto loud =
      testing::normexp("bench " + cfg.string() + args + " --set train.cuda_graphs=on");
  ASSERT_EQ(loud.code, 0) << loud.out;
  EXPECT_NE(loud.out.find("warning " + said), std::string::npos) << loud.out;
}

TEST(BenchCli, WritesJsonAndRejectsMissingConfigs) {
  testing::TempDir dir;
  const auto cfg = dir.write("tiny.yaml", testing::kTinyYaml);
  const auto out = dir.path() / "bench.json";
  auto r = testing::normexp("bench " + cfg.string() +
                            " --set train.device=cpu --warmup 1 --steps 2 --rounds 1 --out " +
                            out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("img/s"), std::string::npos);
  const auto j = nlohmann::json::parse(read_file(out));
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["tool"], "normexp");
  // The default is auto: graphs where possible, and here (no CUDA) it says why not.
  EXPECT_EQ(j[0]["cuda_graphs"], "eager: CUDA graphs need a CUDA device (this run is on cpu)");
  EXPECT_FALSE(j[0].contains("profile"));  // only when asked
  auto prof = testing::normexp("bench " + cfg.string() +
                               " --set train.device=cpu --warmup 1 --steps 1 --rounds 1 "
                               "--profile 1 --profile-top 3");
  ASSERT_EQ(prof.code, 0) << prof.out;
  EXPECT_NE(prof.out.find("## tiny: "), std::string::npos) << prof.out;
  EXPECT_NE(prof.out.find("| name | per call | us | share |"), std::string::npos) << prof.out;

  auto none = testing::normexp("bench");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.out.find("CONFIG"), std::string::npos) << none.out;
  auto bad = testing::normexp("bench " + cfg.string() + " --set train.cuda_graphs=sometimes");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("train.cuda_graphs"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace normexp::train
