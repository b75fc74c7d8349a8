// DeiT's batch regularizers: mixup and CutMix (data/mix.h): the λ distribution, what each does
// to a batch, the switch between them, and the training step's loss with them (train/step.h);
// random erasing from the data section through the pipeline.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include "compose/components.h"
#include "compose/run.h"
#include "data/mix.h"
#include "support/ml_support.h"
#include "train/pipeline.h"
#include "train/step.h"

namespace normexp::data {
namespace {

// Beta(α, α) has mean 1/2 and variance 1/(4(2α + 1)): 0.0962 at DeiT's α = 0.8, 1/12 at 1.
TEST(MixBatch, BetaDrawsHaveTheBetaMoments) {
  torch::manual_seed(0);
  for (double alpha : {0.8, 1.0, 4.0}) {
    const auto lam = sample_beta(alpha, 20000, torch::TensorOptions()).to(torch::kDouble);
    EXPECT_GE(lam.min().item<double>(), 0.0);
    EXPECT_LE(lam.max().item<double>(), 1.0);
    EXPECT_NEAR(lam.mean().item<double>(), 0.5, 0.01) << "alpha " << alpha;
    EXPECT_NEAR(lam.var().item<double>(), 1 / (4 * (2 * alpha + 1)), 0.005) << "alpha " << alpha;
  }
}

// Image n is filled with the value n, so each output pixel says where it came from.
at::Tensor labelled_images(int64_t n, int64_t h, int64_t w) {
  return torch::arange(n, torch::kFloat).view({n, 1, 1, 1}).expand({n, 3, h, w}).contiguous();
}

TEST(MixBatch, MixupIsTheConvexCombinationWithTheReversedBatch) {
  torch::manual_seed(1);
  const auto x = torch::randn({6, 3, 8, 8});
  MixOptions o;
  o.mixup_alpha = 0.8;
  std::vector<double> lams;
  for (int i = 0; i < 50; ++i) {
    const auto m = mix_batch(x, o);
    const double lam = m.lam.item<double>();
    lams.push_back(lam);
    EXPECT_TRUE(m.x.allclose(lam * x + (1 - lam) * x.flip(0), 1e-5, 1e-6)) << "draw " << i;
  }
  EXPECT_GT(*std::max_element(lams.begin(), lams.end()) - *std::min_element(lams.begin(), lams.end()), 0.3);
}

// CutMix replaces one axis-aligned box, the same for every image and channel, with the
// reversed batch's pixels, and λ is exactly the share of pixels left from the image itself.
TEST(MixBatch, CutMixPastesOneBoxAndLamIsTheShareLeft) {
  torch::manual_seed(2);
  const int64_t n = 4, h = 12, w = 10;
  const auto x = labelled_images(n, h, w);
  MixOptions o;
  o.cutmix_alpha = 1.0;
  int partial = 0;
  for (int i = 0; i < 200; ++i) {
    const auto m = mix_batch(x, o);
    const auto pasted = m.x.ne(x);                          // (N, C, H, W)
    EXPECT_TRUE(m.x.masked_select(pasted).equal(x.flip(0).masked_select(pasted)));
    const auto box = pasted[0][0];                          // (H, W)
    EXPECT_TRUE(pasted.equal(box.expand_as(pasted))) << "draw " << i;
    const auto rows = box.any(1), cols = box.any(0);
    EXPECT_TRUE(box.equal(rows.view({h, 1}).logical_and(cols.view({1, w})))) << "draw " << i;
    const double own = 1 - box.to(torch::kDouble).mean().item<double>();
    EXPECT_NEAR(m.lam.item<double>(), own, 1e-6) << "draw " << i;
    if (own > 0 && own < 1) ++partial;
  }
  EXPECT_GT(partial, 150);  // boxes of every size, rarely empty or whole
}

// With both on, each batch is one or the other: CutMix with probability switch_prob.
TEST(MixBatch, BothOnPickOnePerBatch) {
  torch::manual_seed(3);
  const int64_t n = 4;
  const auto x = labelled_images(n, 8, 8);
  for (double p : {0.0, 0.5, 1.0}) {
    MixOptions o;
    o.mixup_alpha = 0.8;
    o.cutmix_alpha = 1.0;
    o.switch_prob = p;
    int cutmixed = 0;
    const int draws = 400;
    for (int i = 0; i < draws; ++i) {
      const auto m = mix_batch(x, o);
      // CutMix leaves only whole values n or n - 1 - n; mixup blends them (λ is never exactly
      // 0 or 1 in practice).
      const bool only_sources = m.x.eq(x).logical_or(m.x.eq(x.flip(0))).all().item<bool>();
      const bool blended = !m.x.allclose(x) && !only_sources;
      if (only_sources) ++cutmixed;
      if (!only_sources) EXPECT_TRUE(blended);
    }
    EXPECT_NEAR(cutmixed / double(draws), p, 0.08) << "switch_prob " << p;
  }
}

// The step's loss with mixup/CutMix and label smoothing is λ CE_e(y) + (1 - λ) CE_e(y
// reversed) on the mixed images, recomputed here from the same random draws. Catches the data
// options not reaching the step (the unmixed loss differs by far more than the tolerance),
// mixing with the wrong partner, or λ on the wrong label.
TEST(MixBatch, TheStepsLossWeighsBothLabelsByLam) {
  for (const char* which : {"data.mixup=0.8", "data.cutmix=1.0"}) {
    testing::TempDir dir;
    const auto exp = testing::experiment_from(
        dir, testing::kTinyYaml, {"data.augment=none", which, "train.label_smoothing=0.1"});
    torch::manual_seed(0);
    auto b = compose::build(exp, torch::kCPU);
    auto pipeline = train::pipeline_from_config(exp.section("data"));
    pipeline.mean.assign(3, 0.5);
    pipeline.std.assign(3, 0.25);
    ASSERT_TRUE(pipeline.mix.enabled());
    auto data = b.dataset->load();
    const auto images = data.train_x.slice(0, 0, 32), labels = data.train_y.slice(0, 0, 32);
    {
      // A few plain steps first: untrained logits are near uniform, where every mixture of
      // labels has about the same loss.
      auto plain = pipeline;
      plain.mix = MixOptions{};
      train::TrainStep warm(*b.model, *b.optimizer, plain, torch::kCPU, train::StepOptions{});
      for (int s = 1; s <= 30; ++s) warm.run(images, labels, 0.05, s);
    }
    double expected = 0, unmixed = 0;
    {
      torch::NoGradGuard no_grad;
      namespace F = torch::nn::functional;
      const auto smooth = F::CrossEntropyFuncOptions().label_smoothing(0.1);
      const auto x = pipeline.prepare(images, /*train=*/true);
      unmixed = F::cross_entropy(b.model->forward(x), labels, smooth).item<double>();
      torch::manual_seed(5);
      const auto m = mix_batch(x, pipeline.mix);
      const auto logits = b.model->forward(m.x);
      const double lam = m.lam.item<double>();
      expected = lam * F::cross_entropy(logits, labels, smooth).item<double>() +
                 (1 - lam) * F::cross_entropy(logits, labels.flip(0), smooth).item<double>();
    }
    ASSERT_GT(std::abs(expected - unmixed), 1e-3) << which;
    train::TrainStep step(*b.model, *b.optimizer, pipeline, torch::kCPU,
                          train::step_options_from(exp.section("train"), false, data::Modality::Images));
    torch::manual_seed(5);
    step.run(images, labels, /*lr=*/0.0, 1);
    EXPECT_NEAR(step.last_loss().item<double>(), expected, 1e-5) << which;
  }
}

// data.random_erasing reaches the pipeline: training inputs get noisy rectangles, evaluation
// inputs never.
TEST(Pipeline, RandomErasingFromTheDataSectionInTrainingOnly) {
  testing::TempDir dir;
  const auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                            {"data.augment=none", "data.random_erasing=1.0"});
  auto pipeline = train::pipeline_from_config(exp.section("data"));
  EXPECT_EQ(pipeline.random_erasing, 1.0);
  pipeline.mean.assign(3, 0.5);
  pipeline.std.assign(3, 0.25);
  const auto images = torch::randint(0, 256, {16, 3, 8, 8}, torch::kUInt8);
  const auto clean = pipeline.prepare(images, /*train=*/false);
  const auto trained = pipeline.prepare(images, /*train=*/true);
  EXPECT_TRUE(trained.ne(clean).flatten(1).any(1).all().item<bool>());  // every image erased
  EXPECT_TRUE(pipeline.prepare(images, /*train=*/false).equal(clean));
}

// data.repeated_aug reaches the training loader (the same seed trains differently with it),
// and a run stopped mid-epoch resumes to the straight run's numbers: the repeated order is
// what the checkpoint keeps.
TEST(RepeatedAugmentation, ChangesTrainingAndResumesExactly) {
  testing::TempDir dir;
  auto exp = [&](const std::string& root, int repeats) {
    return testing::experiment_from(
        dir, testing::kTinyYaml,
        {"output.root=" + (dir.path() / root).string(), "train.epochs=2",
         "train.deterministic=true", fmt::format("data.repeated_aug={}", repeats)});
  };
  const auto plain = compose::run_experiment(exp("plain", 1));
  const auto straight = compose::run_experiment(exp("straight", 3));
  ASSERT_EQ(straight.status, train::RunStatus::Completed);
  EXPECT_NE(plain.metrics["history"][0]["train_loss"], straight.metrics["history"][0]["train_loss"]);
  compose::RunOptions stop;
  stop.interrupt_at_step = 11;  // 8 steps an epoch: mid epoch 2
  const auto stopped = exp("stopped", 3);
  ASSERT_EQ(compose::run_experiment(stopped, stop).status, train::RunStatus::Interrupted);
  compose::RunOptions resume;
  resume.resume = true;
  const auto resumed = compose::run_experiment(stopped, resume);
  ASSERT_EQ(resumed.status, train::RunStatus::Completed);
  for (size_t e = 0; e < 2; ++e)
    for (const char* key : {"train_loss", "test_loss"})
      EXPECT_EQ(straight.metrics["history"][e][key], resumed.metrics["history"][e][key])
          << "epoch " << e + 1 << " " << key;
}

}  // namespace
}  // namespace normexp::data
