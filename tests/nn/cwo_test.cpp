// The cwo invariants (file 004, Eq. 2) after every optimizer step of real training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "nn/params.h"
#include "support/ml_support.h"
#include "train/run.h"

namespace normexp {
namespace {

struct Violations {
  double sphere = 0;  // max |‖w‖² − c| / c
  double center = 0;  // max |1ᵀw| / √n
  int filters = 0;
};

Violations measure(const std::vector<nn::ParamInfo>& params) {
  Violations v;
  for (const auto& p : params) {
    if (p.role != nn::ParamRole::Constrained) continue;
    auto rows = p.tensor.detach().flatten(1).to(torch::kDouble);
    const double n = static_cast<double>(rows.size(1));
    v.sphere = std::max(v.sphere,
                        ((rows.pow(2).sum(1) - p.constraint.c).abs() / p.constraint.c).max().item<double>());
    v.center = std::max(v.center, (rows.sum(1).abs() / std::sqrt(n)).max().item<double>());
    v.filters += static_cast<int>(rows.size(0));
  }
  return v;
}

// Trains a few steps by hand and checks the constraints after each optimizer step.
Violations worst_over_training(const std::vector<std::string>& sets, int steps = 12) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml, sets);
  torch::manual_seed(0);
  auto b = train::build(exp, c10::Device(c10::kCPU));
  auto data = b.dataset->load();
  auto x = data.train_x.slice(0, 0, 32).to(torch::kFloat).div(255.0);
  auto y = data.train_y.slice(0, 0, 32);
  Violations worst = measure(b.optimizer->params());  // the initial projection counts too
  EXPECT_GT(worst.filters, 0);
  for (int s = 0; s < steps; ++s) {
    auto loss = torch::nn::functional::cross_entropy(b.model->forward(x), y);
    b.optimizer->zero_grad();
    loss.backward();
    b.optimizer->step(0.5);  // a large rate, so drift would show
    auto v = measure(b.optimizer->params());
    worst.sphere = std::max(worst.sphere, v.sphere);
    worst.center = std::max(worst.center, v.center);
  }
  return worst;
}

TEST(Cwo, BothConstraintsHoldAfterEveryStep) {
  auto v = worst_over_training({"norm.noise.schedule=constant", "norm.noise.sigma=0.3",
                                "optim.nesterov=true"});
  EXPECT_LE(v.sphere, 1e-4);
  EXPECT_LE(v.center, 1e-5);
}

TEST(Cwo, CustomRadiusAndConstrainedClassifier) {
  auto v = worst_over_training({"norm.c=0.5", "norm.constrain_classifier=true"});
  EXPECT_LE(v.sphere, 1e-4);
  EXPECT_LE(v.center, 1e-5);
}

TEST(Cwo, SphereOnlyKeepsNormButNotMean) {
  auto v = worst_over_training({"norm.center=false"});
  EXPECT_LE(v.sphere, 1e-4);
  EXPECT_GT(v.center, 1e-3);  // nothing keeps the rows centered
}

TEST(Cwo, CenterOnlyKeepsMeanButNotNorm) {
  auto v = worst_over_training({"norm.sphere=false"});
  EXPECT_LE(v.center, 1e-5);
  EXPECT_GT(v.sphere, 1e-3);  // the norm drifts once updates start
}

TEST(Cwo, ProjectedStepMatchesAlgorithm1) {
  // One plain step (no momentum, no decay) must equal
  // w' = sqrt(c) (w - lr (g - mean g)) / ||w - lr (g - mean g)||, row by row.
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"optim.momentum=0.0", "optim.weight_decay=0.0"});
  torch::manual_seed(0);
  auto b = train::build(exp, c10::Device(c10::kCPU));
  auto data = b.dataset->load();
  auto x = data.train_x.slice(0, 0, 16).to(torch::kFloat).div(255.0);
  auto loss = torch::nn::functional::cross_entropy(b.model->forward(x), data.train_y.slice(0, 0, 16));
  b.optimizer->zero_grad();
  loss.backward();
  std::vector<torch::Tensor> expected;
  const double lr = 0.3;
  for (const auto& p : b.optimizer->params()) {
    auto w = p.tensor.detach().reshape({p.tensor.size(0), -1}).to(torch::kDouble);
    auto g = p.tensor.grad().reshape({p.tensor.size(0), -1}).to(torch::kDouble);
    if (p.role == nn::ParamRole::Constrained) {
      auto wt = w - lr * (g - g.mean(1, true));
      expected.push_back(std::sqrt(p.constraint.c) * wt / wt.norm(2, 1, true));
    } else {
      expected.push_back(w - lr * g);
    }
  }
  b.optimizer->step(lr);
  size_t i = 0;
  for (const auto& p : b.optimizer->params()) {
    auto got = p.tensor.detach().reshape({p.tensor.size(0), -1}).to(torch::kDouble);
    EXPECT_TRUE(torch::allclose(got, expected[i++], 1e-5, 1e-6)) << p.name;
  }
}

TEST(Cwo, NoiseIsZeroInEvalAndLinearInTraining) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"norm.noise.schedule=linear", "norm.noise.sigma=0.8"});
  auto b = train::build(exp, c10::Device(c10::kCPU));
  std::vector<double> sigmas;
  for (const auto& m : b.model->modules())
    if (auto* a = dynamic_cast<nn::AffineNoiseImpl*>(m.get())) sigmas.push_back(a->sigma());
  ASSERT_EQ(sigmas.size(), 9u);  // cnn9: one noise layer per conv
  for (size_t l = 1; l <= sigmas.size(); ++l) EXPECT_NEAR(sigmas[l - 1], 0.8 * l / 9.0, 1e-12);
  auto x = torch::randn({4, 3, 8, 8});
  b.model->eval();
  auto y1 = b.model->forward(x);
  EXPECT_TRUE(torch::equal(y1, b.model->forward(x)));
  b.model->train();
  EXPECT_FALSE(torch::allclose(b.model->forward(x), y1));
}

TEST(Cwo, SigmaWithoutScheduleIsAConfigError) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml, {"norm.noise.sigma=0.5"});
  try {
    train::build(exp, c10::Device(c10::kCPU));
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 1u);
    EXPECT_EQ(e.issues()[0].path, "norm.noise.sigma");
    EXPECT_NE(e.issues()[0].where.find("--set norm.noise.sigma=0.5"), std::string::npos);
  }
}

}  // namespace
}  // namespace normexp
