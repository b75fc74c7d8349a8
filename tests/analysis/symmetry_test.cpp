// Table 1 of Akbar as numerical checks on LibTorch modules: BN's per-neuron, LN's
// per-layer and WN's direction scalings leave the loss unchanged; the same transformations
// change a plain network's loss (so the check can fail), and so does WN's (αv, g/α) as
// printed in the table.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "analysis/symmetry.h"

namespace normexp {
namespace {

namespace tnn = torch::nn;

// Seeds the generator before the layers below draw their initial weights (members are built in
// declaration order, before the constructor's body): unseeded, an unlucky draw left a neuron
// whose scaling changed the plain net's loss by less than the tolerance, now and then.
struct Seeded {
  explicit Seeded(uint64_t seed) { torch::manual_seed(seed); }
};

struct Net {
  Seeded seeded{5};
  tnn::Linear fc1{tnn::LinearOptions(6, 12)}, fc2{tnn::LinearOptions(12, 1)};
  tnn::BatchNorm1d bn{12};
  tnn::LayerNorm ln{tnn::LayerNormOptions({12})};
  torch::Tensor x, y;
  Net() {
    fc1->to(torch::kDouble);
    fc2->to(torch::kDouble);
    bn->to(torch::kDouble);
    ln->to(torch::kDouble);
    bn->train();
    x = torch::randn({32, 6}, torch::kDouble);
    y = torch::randn({32, 1}, torch::kDouble);
  }
  torch::Tensor loss(int norm) {  // 0 plain, 1 BN, 2 LN
    auto z = fc1->forward(x);
    if (norm == 1) z = bn->forward(z);
    if (norm == 2) z = ln->forward(z);
    return (fc2->forward(torch::relu(z)) - y).pow(2).mean();
  }
  std::vector<torch::Tensor> params() { return {fc1->weight, fc1->bias}; }
};

constexpr double kTol = 1e-4;  // eps = 1e-5 breaks the symmetry by ~eps/σ²

TEST(Symmetry, BatchNormIsInvariantPerNeuronAndPlainIsNot) {
  Net n;
  const auto before = n.fc1->weight.detach().clone();
  for (double c : {0.5, 3.0, 20.0}) {
    for (int64_t i : {0, 5, 11}) {
      auto t = [&] { analysis::scale_neuron_(n.fc1->weight, n.fc1->bias, i, c); };
      const auto bn = analysis::check_symmetry(
          "bn", [&] { return n.loss(1); }, n.params(), t, kTol);
      EXPECT_TRUE(bn.invariant) << "c " << c << " i " << i << " change " << bn.rel_change;
      const auto plain = analysis::check_symmetry(
          "plain", [&] { return n.loss(0); }, n.params(), t, kTol);
      EXPECT_FALSE(plain.invariant) << "c " << c << " i " << i << " change " << plain.rel_change;
    }
  }
  // The check restores the parameters.
  EXPECT_TRUE(torch::equal(n.fc1->weight.detach(), before));
}

TEST(Symmetry, LayerNormIsInvariantPerLayerButNotPerNeuron) {
  Net n;
  for (double c : {0.5, 3.0, 20.0}) {
    auto layer = [&] { analysis::scale_layer_(n.fc1->weight, n.fc1->bias, c); };
    EXPECT_TRUE(analysis::check_symmetry(
                    "ln", [&] { return n.loss(2); }, n.params(), layer, kTol)
                    .invariant);
    EXPECT_FALSE(analysis::check_symmetry(
                     "plain", [&] { return n.loss(0); }, n.params(), layer, kTol)
                     .invariant);
    auto neuron = [&] { analysis::scale_neuron_(n.fc1->weight, n.fc1->bias, 3, c); };
    EXPECT_FALSE(analysis::check_symmetry(
                     "ln1", [&] { return n.loss(2); }, n.params(), neuron, kTol)
                     .invariant);
  }
}

TEST(Symmetry, WeightNormIsInvariantToTheDirectionScaleNotToTable1sForm) {
  torch::manual_seed(9);
  auto v = torch::randn({4, 3}, torch::kDouble).requires_grad_();
  auto g = torch::rand({4}, torch::kDouble).add(0.5).requires_grad_();
  auto x = torch::randn({10, 3}, torch::kDouble);
  analysis::LossFn loss = [&] {
    auto w = g.unsqueeze(1) * v / v.norm(2, {1}, true);  // w_i = g_i v_i / ‖v_i‖
    return torch::tanh(x.matmul(w.t())).sum().pow(2);
  };
  for (double a : {0.3, 4.0}) {
    const auto dir = analysis::check_symmetry(
        "wn", loss, {v, g}, [&] { analysis::scale_wn_direction_(v, 1, a); }, 1e-12);
    EXPECT_TRUE(dir.invariant) << dir.rel_change;
    const auto printed = analysis::check_symmetry(
        "wn_table1", loss, {v, g}, [&] { analysis::scale_wn_table1_(v, g, 1, a); }, 1e-12);
    EXPECT_FALSE(printed.invariant);
  }
}

}  // namespace
}  // namespace normexp
