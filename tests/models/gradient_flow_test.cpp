// No dead parameters: every trainable tensor of every model x scheme, and of every shipped
// Ikami et al. 2021 Table 1-4 cell at a narrow width, receives gradient and moves in the first steps.
//
// The bug this guards against: WRN's pre-activation blocks once started cwo's mid-branch
// affine at gamma = 0, right before a ReLU. Its output was exactly 0, ReLU passes no gradient
// at 0, so that affine and both convs of every block never moved, and every constraint test
// still passed (dead weights satisfy their constraints). Zero-initialised scales are fine
// where gradient still reaches them (after a branch's last conv): they get a gradient at the
// first step, and the layers before them from the second on, hence a few steps here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "registry/builtin.h"
#include "report/spec.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp {
namespace {

const c10::Device kCpu(c10::kCPU);

// Names of the trainable tensors that did not change over `steps` SGD steps on random data,
// or whose gradient at the last step is zero everywhere. In float64: a small but real gradient
// (an unnormalized ablation's layers start with a vanishing signal) must not be lost to
// float32 rounding of gamma = 1 - lr * 1e-9.
std::vector<std::string> dead_parameters(train::Components& b, int steps = 3) {
  torch::manual_seed(0);
  b.model->to(torch::kDouble);
  const auto shape = b.dataset->shape();
  const auto& params = b.optimizer->params();
  std::vector<torch::Tensor> before;
  for (const auto& p : params) before.push_back(p.tensor.detach().clone());
  b.model->train();
  auto x = torch::randn({8, shape.channels, shape.height, shape.width}, torch::kDouble);
  auto y = torch::randint(shape.classes, {8});
  for (int s = 0; s < steps; ++s) {
    b.optimizer->zero_grad();
    torch::nn::functional::cross_entropy(b.model->forward(x), y).backward();
    b.optimizer->step(0.05);
  }
  std::vector<std::string> dead;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& t = params[i].tensor;
    const bool no_grad = !t.grad().defined() || t.grad().abs().max().item<double>() == 0.0;
    if (no_grad || torch::equal(before[i], t.detach()))
      dead.push_back(params[i].name + (no_grad ? " (no gradient)" : " (never moved)"));
  }
  return dead;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "\n  " + s;
  return out;
}

TEST(GradientFlow, EveryModelWithEverySchemeHasNoDeadParameters) {
  testing::TempDir dir;
  int checked = 0;
  for (const auto& model : registry::models().names()) {
    for (const auto& norm : registry::norms().names()) {
      SCOPED_TRACE(model + " + " + norm);
      const bool token_norm = norm == "ln" || norm == "bcn" || norm == "none";
      if (model == "vit" && !token_norm) continue;  // registry_test: refused with a ConfigError
      std::vector<std::string> variants{"{name: " + norm + "}"};
      // cwo with noise too: noise must not hide a dead layer (nor create one).
      if (norm == "cwo") variants = {"{name: cwo, noise: {schedule: linear, sigma: 0.5}}"};
      // An MLP has one feature vector per sample: bcn's default magnitude statistics over a
      // sample's vectors would normalize a single number, leaving its gamma without gradient
      // (nn/bcn.h); the batch's magnitudes are the group that exists there. DGCNN's head is
      // such a layer too (one pooled vector per shape).
      if (norm == "bcn" && (model == "mlp" || model == "dgcnn")) variants = {"{name: bcn, stats: batch}"};
      // An unnormalized net with SkipInit too: its zero scales sit after each branch's last
      // conv, so the branch gets gradient from the second step on.
      if (norm == "none") variants.push_back("{name: none, conv_init: he, skip_init: true}");
      const std::string resolution = model == "resnet_v1" ? "16" : "8";
      for (const auto& norm_yaml : variants) {
        SCOPED_TRACE(norm_yaml);
        auto exp = testing::experiment_from(
            dir, "data: {name: synthetic, classes: 5, resolution: " + resolution +
                 ", train_size: 16, test_size: 8}\n"
                 "model: {name: " + model + testing::narrow_model_options(model) + "}\nnorm: " + norm_yaml + "\n"
                 "optim: {name: sgd, lr: 0.05}\n");
        auto b = compose::build(exp, kCpu);
        const auto dead = dead_parameters(b);
        EXPECT_TRUE(dead.empty()) << "dead parameters:" << join(dead);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 30);
}

// The data section of a CIFAR cell, swapped for tiny synthetic data of the same class count.
std::vector<std::string> narrow_sets(const config::Experiment& exp) {
  const auto& data = exp.section("data");
  const std::string classes =
      data.get_string("name") == "cifar100"
          ? (data.has("label") && data.get_string("label") == "coarse" ? "20" : "100")
          : "10";
  std::vector<std::string> sets{"data.name=synthetic"};
  for (const char* key : {"root", "label"})  // CIFAR's keys, wherever a config set them
    if (data.has(key) && !data.is_default(key)) sets.push_back(std::string("~data.") + key);
  sets.insert(sets.end(), {"data.classes=" + classes, "data.resolution=8", "data.train_size=16",
                           "data.test_size=8"});
  const std::string model = exp.section("model").get_string("name");
  if (model == "cnn9") sets.push_back("model.width=0.25");  // 16 channels: gn's 16 groups
  if (model == "wrn") sets.insert(sets.end(), {"model.depth=10", "model.width=1"});
  if (model == "resnet") sets.push_back("model.depth=8");
  return sets;
}

TEST(GradientFlow, EveryFile004TableCellHasNoDeadParametersAtNarrowWidth) {
  const auto tables = std::filesystem::path(NORMEXP_SOURCE_DIR) / "configs" / "tables";
  int checked = 0, cwo = 0;
  for (const char* table : {"ikami_table1", "ikami_table2", "ikami_table3", "ikami_table4"}) {
    const auto spec = report::load_spec(tables / (std::string(table) + ".yaml"));
    for (const auto& cell : spec.cells) {
      if (!cell.config) continue;
      SCOPED_TRACE(std::string(table) + " " + cell.row + "/" + cell.column + " (" + cell.where +
                   ")");
      auto full = config::load_experiment(*cell.config, cell.sets, registry::experiment_schema());
      auto sets = cell.sets;
      const auto narrow = narrow_sets(full);
      sets.insert(sets.end(), narrow.begin(), narrow.end());
      auto exp = config::load_experiment(*cell.config, sets, registry::experiment_schema());
      auto b = compose::build(exp, kCpu);
      const auto dead = dead_parameters(b);
      EXPECT_TRUE(dead.empty()) << "dead parameters:" << join(dead);
      ++checked;
      cwo += exp.section("norm").get_string("name") == "cwo";
    }
  }
  EXPECT_GE(checked, 60);  // Tables 1-4 list 108 cells, a few of them not runnable yet
  EXPECT_GE(cwo, 40);
}

}  // namespace
}  // namespace normexp
