// The evaluation pass (train/pipeline.h): what test_err, test_top5_err, test_loss and the mean
// class accuracy are computed from, and the mode the model is evaluated in.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "data/augment.h"
#include "nn/layers.h"
#include "train/pipeline.h"

namespace normexp::train {
namespace {

// Image i (one grey pixel of value i) -> row i of a fixed table of logits, so the expected
// figures can be computed from the table alone.
class LookupModel : public models::ModelImpl {
 public:
  explicit LookupModel(torch::Tensor table) : table_(std::move(table)) {}
  torch::Tensor forward(torch::Tensor x) override {
    const auto index = (x.flatten(1).select(1, 0) * 255.0).round().to(torch::kLong);
    return table_.index_select(0, index);
  }

 private:
  torch::Tensor table_;
};

BatchPipeline plain_pipeline() {
  BatchPipeline p;
  p.augment = false;
  p.normalize = false;  // x = pixel / 255
  return p;
}

TEST(Evaluate, TopOneTopFiveLossAndPerClassAccuracyOfKnownLogits) {
  // 40 images, 7 classes, of which class 6 never occurs; batches of 16 (the last one partial).
  torch::manual_seed(7);
  const int64_t n = 40, k = 7;
  const auto table = torch::randn({n, k}) * 2;
  const auto labels = torch::randint(0, 6, {n}, torch::kLong);
  const auto images = torch::arange(n).to(torch::kUInt8).view({n, 1, 1, 1});
  LookupModel model(table);
  data::DeviceLoader loader(images, labels, 16, /*shuffle=*/false, /*drop_last=*/false);

  // The reference, row by row in double: the label's rank among the logits (random floats:
  // no ties), -log softmax, and per-class hit counts.
  const auto t = table.to(torch::kDouble);
  double loss = 0, top1 = 0, top5 = 0;
  std::vector<double> hits(k, 0), count(k, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels[i].item<int64_t>();
    const double ly = t[i][y].item<double>();
    int64_t rank = 0;
    double z = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double lj = t[i][j].item<double>();
      rank += lj > ly ? 1 : 0;
      z += std::exp(lj);
    }
    loss += std::log(z) - ly;
    top1 += rank == 0 ? 1 : 0;
    top5 += rank < 5 ? 1 : 0;
    hits[y] += rank == 0 ? 1 : 0;
    count[y] += 1;
  }
  double class_acc = 0;
  int present = 0;
  for (int64_t c = 0; c < k; ++c)
    if (count[c] > 0) {
      class_acc += hits[c] / count[c];
      ++present;
    }
  ASSERT_GT(top5, top1);  // the data distinguish the two
  ASSERT_LT(top5, n);

  const auto r = eval_result(evaluate_sums(model, loader, plain_pipeline(), false, k));
  EXPECT_EQ(r.n, n);
  EXPECT_NEAR(r.loss, loss / n, 1e-5);
  EXPECT_NEAR(r.top1_err, 100.0 * (1 - top1 / n), 1e-9);
  EXPECT_NEAR(r.top5_err, 100.0 * (1 - top5 / n), 1e-9);
  EXPECT_NEAR(r.mean_class_acc, 100.0 * class_acc / present, 1e-9);  // the 6 classes present
  // Without per-class counts there is no class accuracy; the rest is the same.
  const auto plain = evaluate(model, loader, plain_pipeline(), false);
  EXPECT_EQ(plain.mean_class_acc, -1);
  EXPECT_EQ(plain.top5_err, r.top5_err);
}

// BN, cwo's noise layer and dropout: three layers whose output differs between training
// and evaluation.
struct NoisyNet : models::ModelImpl {
  torch::nn::Conv2d conv{torch::nn::Conv2dOptions(1, 4, 3).padding(1)};
  torch::nn::BatchNorm2d bn{4};
  nn::AffineNoise noise{4};
  torch::nn::Linear head{4, 3};
  NoisyNet() {
    register_module("conv", conv);
    register_module("bn", bn);
    register_module("noise", noise);
    register_module("head", head);
    noise->set_sigma(0.5);
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto h = torch::dropout(noise->forward(bn->forward(conv->forward(x))).relu(), 0.5,
                            is_training());
    return head->forward(h.mean({2, 3}));
  }
};

TEST(Evaluate, RunsInEvalModeLeavesTheModelUntouchedAndRestoresTraining) {
  torch::manual_seed(8);
  NoisyNet net;
  {
    torch::NoGradGuard no_grad;  // running statistics unlike any batch's
    net.bn->running_mean.fill_(3.0);
    net.bn->running_var.fill_(0.25);
  }
  const auto images = torch::randint(0, 256, {24, 1, 6, 6}, torch::kLong).to(torch::kUInt8);
  const auto labels = torch::randint(0, 3, {24}, torch::kLong);
  data::DeviceLoader loader(images, labels, 8, false, false);
  net.train();
  const auto before = net.bn->running_mean.clone();

  const auto first = evaluate(net, loader, plain_pipeline(), false);
  EXPECT_TRUE(net.is_training());                        // restored
  EXPECT_TRUE(torch::equal(net.bn->running_mean, before));  // BN's estimates not updated
  const auto second = evaluate(net, loader, plain_pipeline(), false);
  EXPECT_EQ(first.loss, second.loss);  // no noise, no dropout: the same numbers twice

  // And the numbers are those of the model in eval mode.
  net.eval();
  torch::NoGradGuard no_grad;
  const auto logits = net.forward(images.to(torch::kFloat) / 255.0);
  const double loss = torch::nn::functional::cross_entropy(logits, labels).item<double>();
  EXPECT_NEAR(first.loss, loss, 1e-5);
}

}  // namespace
}  // namespace normexp::train
