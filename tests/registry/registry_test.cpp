// Every registered name builds from a minimal config and works (the tiny-cuda-nn pattern).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "registry/builtin.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp::registry {
namespace {

const c10::Device kCpu(c10::kCPU);

TEST(Registry, EveryModelWithEveryNormSchemeRunsForward) {
  testing::TempDir dir;
  int combos = 0;
  for (const auto& model : models().names()) {
    for (const auto& norm : norms().names()) {
      SCOPED_TRACE(model + " + " + norm);
      auto exp = testing::experiment_from(
          dir, "data: {name: synthetic, classes: 7, resolution: 8, train_size: 16, test_size: 8}\n"
               "model: {name: " + model + testing::narrow_model_options(model) + "}\nnorm: {name: " + norm + "}\n");
      // Transformers need a norm for token features: ln, bcn and none have one.
      const bool token_norm = norm == "ln" || norm == "bcn" || norm == "none";
      if (model == "vit" && !token_norm) {
        try {
          compose::build(exp, kCpu);
          ADD_FAILURE() << "vit built with " << norm;
        } catch (const ConfigError& e) {
          EXPECT_NE(std::string(e.what()).find("token features"), std::string::npos) << e.what();
        }
        ++combos;
        continue;
      }
      auto b = compose::build(exp, kCpu);
      auto x = torch::randn({3, 3, 8, 8});
      auto y = b.model->forward(x);
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, 7}));
      EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
      EXPECT_EQ(b.model->features(x).sizes(),
                (std::vector<int64_t>{3, b.model->feature_dim()}));
      ++combos;
    }
  }
  EXPECT_EQ(combos, static_cast<int>(models().names().size() * norms().names().size()));
}

TEST(Registry, EveryDatasetLoadsWithItsDeclaredShape) {
  testing::TempDir dir;
  for (const auto& name : datasets().names()) {
    SCOPED_TRACE(name);
    // Datasets read from disk (a `root` option) get an empty root here and must say how to get
    // their files; tests/data/cifar_test.cpp loads tiny files in their format.
    const auto& opts = datasets().get(name).options;
    const bool from_files = std::any_of(opts.begin(), opts.end(),
                                        [](const auto& o) { return o.key == "root"; });
    auto exp = testing::experiment_from(
        dir, from_files ? "data: {name: " + name + ", root: " + (dir.path() / "none").string() + "}\n"
                        : "data: {name: " + name + ", train_size: 20, test_size: 10}\n");
    auto ds = datasets().get(name).make(exp.section("data"));
    const auto shape = ds->shape();
    if (from_files) {
      EXPECT_GT(ds->train_size(), 0);
      try {
        ds->load();
        ADD_FAILURE() << "loaded from an empty root";
      } catch (const RunError& e) {
        EXPECT_NE(std::string(e.what()).find("normexp data"), std::string::npos) << e.what();
      }
      continue;
    }
    auto d = ds->load();
    EXPECT_EQ(ds->modality(), d.modality);  // known before loading (bench's pipeline)
    EXPECT_EQ(d.train_x.sizes(),
              (std::vector<int64_t>{ds->train_size(), shape.channels, shape.height, shape.width}));
    EXPECT_EQ(d.train_x.scalar_type(), torch::kUInt8);
    EXPECT_LT(d.train_y.max().item<int64_t>(), shape.classes);
    EXPECT_EQ(static_cast<int64_t>(d.mean.size()), shape.channels);
  }
}

TEST(Registry, EveryOptimizerStepsAndEveryScheduleGivesPositiveRates) {
  testing::TempDir dir;
  for (const auto& opt : optimizers().names()) {
    SCOPED_TRACE(opt);
    auto exp = testing::experiment_from(dir, std::string(testing::kTinyYaml), {"optim.name=" + opt});
    auto b = compose::build(exp, kCpu);
    auto before = b.optimizer->params().front().tensor.detach().clone();
    auto loss = b.model->forward(torch::randn({2, 3, 8, 8})).pow(2).mean();
    loss.backward();
    b.optimizer->step(0.1);
    EXPECT_FALSE(torch::equal(before, b.optimizer->params().front().tensor));
  }
  for (const auto& sched : lr_schedules().names()) {
    SCOPED_TRACE(sched);
    auto exp = testing::experiment_from(dir, "schedule: {name: " + sched + ", warmup_epochs: 1}\n");
    auto s = lr_schedules().get(sched).make(exp.section("schedule"), {0.2, 5, 4});
    for (int64_t step = 0; step < 20; ++step) {
      EXPECT_GT(s->lr_at(step), 0.0);
      EXPECT_LE(s->lr_at(step), 0.2 + 1e-12);
    }
  }
  for (const auto& noise : noise_schedules().names()) {
    SCOPED_TRACE(noise);
    const auto& f = noise_schedules().get(noise).make;
    for (int64_t l = 1; l <= 5; ++l) {
      const double s = f(l, 5, 0.5);
      EXPECT_GE(s, 0.0);
      EXPECT_LE(s, 0.5);
    }
    EXPECT_DOUBLE_EQ(f(5, 5, 0.5), noise == "none" ? 0.0 : 0.5);
  }
}

TEST(Registry, UnknownNameListsTheValidOnes) {
  testing::TempDir dir;
  try {
    testing::experiment_from(dir, "model: {name: resnet9000}\n");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("resnet9000"), std::string::npos) << msg;
    for (const auto& name : models().names()) EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find("exp.yaml:1"), std::string::npos) << msg;
  }
  EXPECT_THROW(norms().get("nope"), ConfigError);
}

TEST(Registry, DuplicatesAreRejected) {
  Registry<int> r("thing");
  r.add({"a", "", {}, 1});
  EXPECT_THROW(r.add({"a", "", {}, 2}), std::logic_error);
}

}  // namespace
}  // namespace normexp::registry
