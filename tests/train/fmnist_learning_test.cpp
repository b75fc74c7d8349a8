// Learning on real data, in CI: the narrow 9-layer CNN on a Fashion-MNIST subset with BN and
// with cwo at the paper's CNN learning rate (Ikami et al. 2021 §4.1.1: 0.1), the quick start's setting,
// about 45 s each on two cores. A working method clears the accuracy bar; the broken ones this
// guards against do not: a net whose loss sticks at ln 10 (dead layers, a collapsed catapult)
// stays near 90% error, and a diverged run ends with status "diverged". Then BCN in place of
// BN (two readings, about 90 s each), DeiT's regularizers (about 40 s) and SimCLR's
// pretraining (Markou §5.3) against the untrained encoder (about 100 s).
//
// scripts/setup.sh installs Debian's dataset-fashion-mnist, so the data is always there in CI.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "data/fashion_mnist.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp::train {
namespace {

constexpr const char* kFmnistYaml = R"(name: fmnist_ci
data: {name: fashion_mnist, train_size: 15000, test_size: 5000, augment: standard}
model: {name: cnn9, width: 0.25}
optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-3}
schedule: {name: cosine}
train: {epochs: 4, batch_size: 128, progress: none, device: cpu}
)";

nlohmann::json train_on_fmnist(const std::vector<std::string>& sets) {
  if (!std::filesystem::exists(data::kFashionMnistRoot))
    ADD_FAILURE() << data::kFashionMnistRoot
                  << " is missing: scripts/setup.sh installs dataset-fashion-mnist";
  testing::TempDir dir;
  auto all = sets;
  all.push_back("output.root=" + (dir.path() / "res").string());
  auto exp = testing::experiment_from(dir, kFmnistYaml, all);
  auto result = compose::run_experiment(exp);
  return nlohmann::json::parse(read_file(result.dir / "metrics.json"));
}

void expect_learned(const nlohmann::json& m) {
  ASSERT_EQ(m["status"], "completed") << m.value("divergence", nlohmann::json()).dump();
  const double err = m["final"]["test_err"];
  // Measured (2-core CPU, LibTorch 1.13, seeds 0 and 1): BN ~12%, cwo ~17% (train loss ~0.5);
  // chance is 90%.
  EXPECT_LT(err, 25.0);
  EXPECT_LT(m["final"]["train_loss"].get<double>(), 0.8);  // ln 10 = 2.30 is "learned nothing"
}

TEST(FashionMnist, BatchNormLearns) {
  expect_learned(train_on_fmnist({"norm.name=bn"}));
}

TEST(FashionMnist, CwoLearnsAtThePapersLearningRate) {
  // configs/fmnist/cnn9_cwo.yaml's noise. Without noise this CNN is unstable at lr 0.1 (README,
  // "Why cwo diverged"): the test would then measure the seed, not the method.
  expect_learned(train_on_fmnist(
      {"norm.name=cwo", "norm.noise.schedule=constant", "norm.noise.sigma=0.2"}));
}

// BCN (Markou) in place of BN learns on real data: the whole path of a training run (the fused
// autograd function, its magnitude statistics, the optimizer over its parameters) clears a bar
// that a BCN with a wrong gradient term, a dead band or a collapse to the class prior does not
// (those end at ln 10 = 2.30 and ~90% error). At lr 0.01: at the CIFAR recipe's 0.1 this CNN,
// like the ResNet-18 of markou_fmnist_lr01, stays at the class prior with BCN's per-position
// vectors (README, "Band-Constrained Normalization"). Measured (2-core CPU, LibTorch 1.13,
// seed 0): 38.0% test error, training loss 1.09 after 4 epochs, 90 s; BN at lr 0.1 ~12%.
TEST(FashionMnist, BcnLearnsAtASmallLearningRate) {
  const auto m = train_on_fmnist({"norm.name=bcn", "optim.lr=0.01"});
  ASSERT_EQ(m["status"], "completed") << m.value("divergence", nlohmann::json()).dump();
  EXPECT_LT(m["final"]["test_err"].get<double>(), 55.0);
  EXPECT_LT(m["final"]["train_loss"].get<double>(), 1.5);
}

// The reading the paper's ResNet configs use (configs/bcn/*resnet50_bcn.yaml): a sample's
// whole map as BCN's vector, statistics over the batch, at the recipe's lr 0.1, where the
// per-position default stays at ln 10. Catches a vector: sample path that mixes samples in
// its reshape, drops the per-channel affine or takes per-sample statistics, and a change that
// brings back the collapse. Measured (2-core CPU, LibTorch 1.13, seed 0): 24.9% test error,
// training loss 0.67 after 4 epochs, 85 s.
TEST(FashionMnist, BcnWithWholeMapVectorsLearnsAtTheRecipesLearningRate) {
  const auto m = train_on_fmnist({"norm.name=bcn", "norm.vector=sample", "norm.stats=batch"});
  ASSERT_EQ(m["status"], "completed") << m.value("divergence", nlohmann::json()).dump();
  EXPECT_LT(m["final"]["test_err"].get<double>(), 40.0);
  EXPECT_LT(m["final"]["train_loss"].get<double>(), 1.0);
}

// DeiT's regularizers together (RandAugment, repeated augmentation, random erasing, mixup /
// CutMix, label smoothing) still train the CNN: they slow it (measured 22.9% test error after
// 4 epochs against BN's ~12.7% without them) but a broken one (garbage images from an op, a
// NaN from the Beta draws, labels mixed with the wrong images, erasing the whole image) ends
// near chance, diverges or stays at ln 10.
TEST(FashionMnist, DeitRegularizersStillLearn) {
  const auto m = train_on_fmnist(
      {"norm.name=bn", "data.augment=randaugment", "data.repeated_aug=3",
       "data.random_erasing=0.25", "data.mixup=0.8", "data.cutmix=1.0",
       "train.label_smoothing=0.1"});
  ASSERT_EQ(m["status"], "completed") << m.value("divergence", nlohmann::json()).dump();
  EXPECT_LT(m["final"]["test_err"].get<double>(), 30.0);
  // Against mixed, smoothed targets the loss cannot reach 0 (measured 1.73); ln 10 = 2.30 is
  // "learned nothing".
  EXPECT_LT(m["final"]["train_loss"].get<double>(), 2.0);
}

// SimCLR (Markou §5.3's task) learns its contrastive task on real data without collapsing the
// encoder: NT-Xent falls well below where it starts and below chance (ln 255), the pooled
// features spread out from the untrained encoder's near-single direction (mean pairwise cosine
// 1 - 1e-6 at init), and both read-outs keep the class information. Catches an optimizer that
// misses the encoder (no spread) or the head (no fall), and an encoder that collapses to one
// output (the kNN falls towards chance).
// What it does not claim: that 6 epochs beat the untrained encoder's kNN accuracy. They do not
// here (seeds 0-2, float64 read-out: 75.2 -> 78.5, 78.7 -> 75.5, 77.2 -> 77.7); the old version
// of this test said they did because the read-out ran in float32, which cost the untrained
// features' kNN about 8 points (Simclr.KnnOnNearlyParallelFeaturesNeedsDoublePrecision).
TEST(FashionMnist, SimclrLearnsTheContrastiveTaskWithoutCollapse) {
  testing::TempDir dir;
  const std::string yaml = R"(name: simclr_fmnist_ci
task: {name: simclr, proj_hidden: 128, proj_dim: 32, head_bn: true, crop_min: 0.3, eval_every: 1, knn_k: 20, linear_epochs: 10, target_acc: 100.0}
data: {name: fashion_mnist, train_size: 10000, test_size: 2000, augment: none}
model: {name: cnn9, width: 0.25}
norm: {name: bn}
optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 5.0e-4}
schedule: {name: cosine}
train: {epochs: 6, batch_size: 128, progress: none, device: cpu}
)";
  auto exp = testing::experiment_from(dir, yaml, {"output.root=" + (dir.path() / "res").string()});
  const auto result = compose::run_experiment(exp);
  const auto m = nlohmann::json::parse(read_file(result.dir / "metrics.json"));
  ASSERT_EQ(m["status"], "completed");
  const auto& r = m["results"];
  const auto& h = r["history"];
  ASSERT_EQ(h.size(), 7u);  // epoch 0 (untrained) and 6 epochs
  // Measured (2-core CPU, LibTorch 1.13, seeds 0-2, one thread): NT-Xent 4.59-4.71 -> 4.06-4.28
  // (ln 255 = 5.54 is chance); feature cosine 1 - 1e-6 -> 0.83-0.98; kNN 75-79% before and
  // after; linear evaluation 75-78%.
  EXPECT_LT(h[6]["train_loss"].get<double>(), h[1]["train_loss"].get<double>() - 0.3) << h.dump();
  EXPECT_LT(h[6]["train_loss"].get<double>(), std::log(255.0) - 1.0) << h.dump();
  EXPECT_GT(h[0]["feature_cos"].get<double>(), 0.9999) << h.dump();
  EXPECT_LT(h[6]["feature_cos"].get<double>(), 0.995) << h.dump();
  const double init = r["knn_acc_init"];
  EXPECT_GT(r["knn_acc"].get<double>(), init - 6.0) << h.dump();
  EXPECT_GT(r["linear_acc"].get<double>(), 70.0) << r.dump();
}

}  // namespace
}  // namespace normexp::train
