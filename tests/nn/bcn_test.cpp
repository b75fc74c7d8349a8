// Band-Constrained Normalization (Markou): Theorem 1's band, its ablations, gradients
// against finite differences, and safety at x = 0.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "nn/bcn.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp::nn {
namespace {

BcnOptions options(int64_t d, BcnLayout layout, double alpha, BcnStats stats,
                   BcnBound bound = BcnBound::Tanh) {
  BcnOptions o;
  o.features = d;
  o.layout = layout;
  o.alpha = alpha;
  o.stats = stats;
  o.bound = bound;
  return o;
}

// Inputs Theorem 1 must hold for: (N=4, T=6, D=16) token features.
std::vector<std::pair<std::string, torch::Tensor>> hard_inputs() {
  torch::manual_seed(0);
  auto r = torch::randn({4, 6, 16});
  auto mixed = r.clone();
  mixed.index_put_({0}, r[0] * 1e30);
  mixed.index_put_({1}, r[1] * 1e-30);
  mixed.index_put_({2, 0}, torch::zeros({16}));
  mixed.index_put_({3, 1, 0}, 1e30);  // one huge entry in a normal vector
  mixed.index_put_({3, 2, 0}, 1e-30);
  return {{"random", r},          {"huge", r * 1e30},  {"tiny", r * 1e-30},
          {"zero", torch::zeros_like(r)}, {"mixed", mixed}, {"scaled", r * torch::logspace(-6, 6, 6).view({1, 6, 1})}};
}

const BcnStats kAllStats[] = {BcnStats::Tokens, BcnStats::Batch, BcnStats::Literal, BcnStats::None};

TEST(Bcn, Theorem1BandHoldsForEveryInputAlphaAndMode) {
  for (double alpha : {0.05, 0.2, 0.5, 0.95}) {
    for (auto stats : kAllStats) {
      for (auto bound : {BcnBound::Tanh, BcnBound::Clip}) {
        Bcn bcn(options(16, BcnLayout::Tokens, alpha, stats, bound));
        for (bool train : {true, false}) {
          bcn->train(train);
          for (const auto& [name, x] : hard_inputs()) {
            SCOPED_TRACE(name + " alpha " + std::to_string(alpha) + " stats " +
                         std::to_string(static_cast<int>(stats)));
            auto y = bcn->core(x);
            ASSERT_TRUE(torch::isfinite(y).all().item<bool>());
            auto norms = y.norm(2, {-1});
            EXPECT_GE(norms.min().item<double>(), (1 - alpha) * (1 - 1e-6));
            EXPECT_LE(norms.max().item<double>(), 1 + 1e-6);
          }
        }
      }
    }
  }
}

TEST(Bcn, Theorem1HoldsForConvFeatureMapsAlongChannels) {
  torch::manual_seed(0);
  Bcn bcn(options(8, BcnLayout::Channels, 0.3, BcnStats::Tokens));
  auto x = torch::randn({2, 8, 5, 5}) * torch::logspace(-20, 20, 5).view({1, 1, 1, 5});
  auto norms = bcn->core(x).norm(2, {1});
  EXPECT_GE(norms.min().item<double>(), 0.7 * (1 - 1e-6));
  EXPECT_LE(norms.max().item<double>(), 1 + 1e-6);
}

TEST(Bcn, DirectionIsKeptAndMagnitudeOrderIsPreserved) {
  torch::manual_seed(0);
  Bcn bcn(options(16, BcnLayout::Tokens, 0.2, BcnStats::Tokens));
  auto x = torch::randn({1, 10, 16}) * torch::linspace(0.1, 5.0, 10).view({1, 10, 1});
  auto y = bcn->core(x);
  auto cos = torch::cosine_similarity(x, y, -1);
  EXPECT_NEAR(cos.min().item<double>(), 1.0, 1e-5);
  // Larger inputs get larger outputs (tanh and the LayerNorm are increasing for gamma > 0).
  auto n = y.norm(2, {-1}).squeeze(0);
  auto order = std::get<1>(x.norm(2, {-1}).squeeze(0).sort());
  auto sorted = n.index_select(0, order);
  EXPECT_TRUE((sorted.slice(0, 1) > sorted.slice(0, 0, -1)).all().item<bool>());
  // The band is used: the smallest and largest tokens land near its two ends.
  EXPECT_LT(n.min().item<double>(), 0.87);
  EXPECT_GT(n.max().item<double>(), 0.93);
}

TEST(Bcn, AblationsBehaveAsDocumented) {
  torch::manual_seed(0);
  auto x = torch::randn({4, 6, 16}) * torch::logspace(-2, 2, 6).view({1, 6, 1});
  // Without the magnitude LayerNorm, m~ = ||x|| >= 0: only the upper half of the band is used.
  Bcn none(options(16, BcnLayout::Tokens, 0.4, BcnStats::None));
  EXPECT_GE(none->core(x).norm(2, {-1}).min().item<double>(), 0.8 - 1e-6);
  // The paper's literal LayerNorm(1) is degenerate: the scale is the same for every input.
  Bcn literal(options(16, BcnLayout::Tokens, 0.4, BcnStats::Literal));
  auto n = literal->core(x).norm(2, {-1});
  EXPECT_NEAR((n.max() - n.min()).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(n.mean().item<double>(), 0.8, 1e-6);  // tanh(beta = 0) -> s = 1 - alpha/2
  // Hard clipping saturates: with a steep magnitude LayerNorm (gamma = 5) the small tokens
  // get s exactly 1 - alpha, the large ones exactly 1, and ||y|| then passes no gradient back
  // (tanh, at gamma = 1, still does).
  for (auto bound : {BcnBound::Clip, BcnBound::Tanh}) {
    Bcn b(options(16, BcnLayout::Tokens, 0.4, BcnStats::Tokens, bound));
    {
      torch::NoGradGuard g;
      b->mag_weight.fill_(bound == BcnBound::Clip ? 5.0 : 1.0);
    }
    auto xs = (torch::randn({1, 8, 16}) *
               torch::tensor({1.0, 1.0, 1.0, 1.0, 10.0, 10.0, 10.0, 10.0}).view({1, 8, 1}))
                  .requires_grad_(true);
    auto n = b->core(xs).norm(2, {-1});
    n.sum().backward();
    const double grad = xs.grad().abs().max().item<double>();
    if (bound == BcnBound::Clip) {
      EXPECT_NEAR(n[0][0].item<double>(), 0.6, 1e-6);
      EXPECT_NEAR(n[0][7].item<double>(), 1.0, 1e-6);
      EXPECT_LT(grad, 1e-6);  // rounding in ||x/||x|||| only
    } else {
      EXPECT_GT(n[0][0].item<double>(), 0.6);
      EXPECT_GT(grad, 1e-4);  // vs < 1e-6 when clipped
    }
  }
  // The drop-in extras leave the band (that is why Theorem 1 is tested on core()).
  auto o = options(16, BcnLayout::Tokens, 0.4, BcnStats::Tokens);
  Bcn full(o);
  EXPECT_GT(full->forward(x).norm(2, {-1}).min().item<double>(), 1.0);  // sqrt(16) * 0.6
}

TEST(Bcn, ZeroInputGivesNoNaNForwardOrBackward) {
  torch::manual_seed(0);
  for (auto stats : kAllStats) {
    Bcn bcn(options(16, BcnLayout::Tokens, 0.2, stats));
    auto x = torch::zeros({2, 3, 16}, torch::requires_grad());
    auto y = bcn->forward(x);
    (y * torch::randn_like(y)).sum().backward();
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
    for (const auto& p : bcn->parameters())
      if (p.grad().defined()) EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
  }
}

// d(sum(w * BCN(x)))/dx by autograd against central differences, in double precision.
TEST(Bcn, BackwardAgreesWithFiniteDifferences) {
  torch::manual_seed(1);
  for (auto stats : kAllStats) {
    for (auto layout : {BcnLayout::Tokens, BcnLayout::Channels}) {
      SCOPED_TRACE(static_cast<int>(stats) * 10 + static_cast<int>(layout));
      Bcn bcn(options(5, layout, 0.3, stats));
      bcn->to(torch::kDouble);
      {
        torch::NoGradGuard g;  // non-trivial LayerNorm and affine parameters
        bcn->mag_weight.fill_(1.3);
        bcn->mag_bias.fill_(0.2);
        bcn->weight.uniform_(0.5, 1.5);
        bcn->bias.uniform_(-0.5, 0.5);
      }
      auto x = layout == BcnLayout::Tokens ? torch::randn({2, 4, 5}, torch::kDouble)
                                           : torch::randn({2, 5, 2, 2}, torch::kDouble);
      auto w = torch::randn_like(x);
      auto f = [&](const torch::Tensor& in) { return (w * bcn->forward(in)).sum(); };
      auto xg = x.clone().requires_grad_(true);
      f(xg).backward();
      auto analytic = xg.grad();
      auto numeric = torch::zeros_like(x);
      const double h = 1e-6;
      auto flat = x.view({-1});
      for (int64_t i = 0; i < flat.numel(); ++i) {
        torch::NoGradGuard g;
        auto xp = x.clone(), xm = x.clone();
        xp.view({-1})[i] += h;
        xm.view({-1})[i] -= h;
        numeric.view({-1})[i] = (f(xp) - f(xm)) / (2 * h);
      }
      EXPECT_LT((analytic - numeric).abs().max().item<double>(), 1e-6)
          << analytic << numeric;
    }
  }
}

// Markou §4.1: ds/dm~ = alpha/2 sech^2(m~), so the magnitude path's factor is in (0, alpha/2].
TEST(Bcn, ScaleDerivativeIsHalfAlphaSech2) {
  for (double alpha : {0.1, 0.2, 0.7}) {
    auto m = torch::linspace(-8, 8, 401, torch::kDouble).requires_grad_(true);
    bcn_scale(m, alpha, BcnBound::Tanh).sum().backward();
    auto g = m.grad();
    auto expected = alpha / 2 / torch::cosh(m.detach()).pow(2);
    EXPECT_LT((g - expected).abs().max().item<double>(), 1e-12);
    EXPECT_LE(g.max().item<double>(), alpha / 2 + 1e-15);
    EXPECT_NEAR(g.max().item<double>(), alpha / 2, 1e-12);  // at m~ = 0
    EXPECT_GT(g.min().item<double>(), 0.0);
  }
}

TEST(Bcn, BatchStatisticsUseRunningEstimatesInEval) {
  torch::manual_seed(0);
  Bcn bcn(options(8, BcnLayout::Tokens, 0.2, BcnStats::Batch));
  auto x = torch::randn({16, 4, 8}) * 3;
  for (int i = 0; i < 200; ++i) bcn->core(x);
  const double mean_m = x.norm(2, {-1}).mean().item<double>();
  EXPECT_NEAR(bcn->running_mean.item<double>(), mean_m, 1e-3 * mean_m);
  bcn->eval();
  // A single token in eval is scaled by the population statistics, as in training.
  auto train_y = (bcn->train(), bcn->core(x));
  bcn->eval();
  auto eval_y = bcn->core(x);
  EXPECT_LT((train_y - eval_y).abs().max().item<double>(), 1e-3);
}

// The running variance is the magnitudes' unbiased variance, as BatchNorm keeps it: with
// momentum 1 one training batch sets it, in the op chain and the fused function, for token
// vectors, per-position channel vectors and whole maps (the magnitudes computed here with
// norm() and var(), independently of the layer).
TEST(Bcn, BatchStatisticsKeepTheUnbiasedRunningVariance) {
  torch::manual_seed(3);
  struct Case {
    const char* name;
    BcnLayout layout;
    BcnVector vector;
    torch::Tensor x;
    std::vector<int64_t> feature_dims;  // the axes one magnitude spans
  };
  const std::vector<Case> cases = {
      {"tokens", BcnLayout::Tokens, BcnVector::Position,
       torch::randn({5, 3, 8}, torch::kDouble) * 2 + 1, {2}},
      {"channels per position", BcnLayout::Channels, BcnVector::Position,
       torch::randn({4, 8, 3, 2}, torch::kDouble) + 0.5, {1}},
      {"whole maps", BcnLayout::Channels, BcnVector::Sample,
       torch::randn({6, 8, 3, 2}, torch::kDouble) * torch::linspace(0.5, 3, 6, torch::kDouble)
                                                        .view({6, 1, 1, 1}),
       {1, 2, 3}},
  };
  for (const auto& c : cases) {
    const auto m = c.x.norm(2, c.feature_dims).flatten();
    ASSERT_GT(m.numel(), 2);
    for (bool fused : {false, true}) {
      SCOPED_TRACE(std::string(c.name) + (fused ? ", fused" : ", op chain"));
      auto o = options(8, c.layout, 0.2, BcnStats::Batch);
      o.vector = c.vector;
      o.momentum = 1.0;
      o.fused = fused;
      Bcn bcn(o);
      bcn->to(torch::kDouble);
      bcn->forward(c.x);
      EXPECT_NEAR(bcn->running_mean.item<double>(), m.mean().item<double>(), 1e-12);
      const double unbiased = m.var(/*unbiased=*/true).item<double>();
      EXPECT_NEAR(bcn->running_var.item<double>(), unbiased, 1e-12 * unbiased);
    }
  }
}

TEST(Bcn, AlphaOutsideTheOpenIntervalIsAConfigError) {
  testing::TempDir dir;
  for (const char* alpha : {"0", "1", "1.5", "-0.1"}) {
    try {
      testing::experiment_from(dir, std::string("norm: {name: bcn, alpha: ") + alpha + "}\n");
      ADD_FAILURE() << "alpha " << alpha << " accepted";
    } catch (const ConfigError& e) {
      ASSERT_EQ(e.issues().size(), 1u);
      EXPECT_EQ(e.issues()[0].path, "norm.alpha");
    }
  }
  EXPECT_THROW(Bcn(options(4, BcnLayout::Tokens, 1.0, BcnStats::Tokens)), std::invalid_argument);
}

// norm.fused: false must reach every BCN layer of a composed model (it is how a researcher
// rules the fused function in or out of a misbehaving run), and the two paths must give the
// same loss and gradients on a whole net, not just on one layer. The key came after BCN
// results existed: at its default it must leave the experiment hash (and those runs) as is.
TEST(Bcn, FusedKeyReachesEveryLayerAndBothPathsTrainAlike) {
  testing::TempDir dir;
  const auto hash = [&](std::vector<std::string> sets) {
    sets.insert(sets.begin(), "norm.name=bcn");
    return testing::experiment_from(dir, testing::kTinyYaml, sets).hash();
  };
  EXPECT_EQ(hash({"norm.fused=true"}), hash({}));
  EXPECT_NE(hash({"norm.fused=false"}), hash({}));
  auto gradients = [&](const std::string& fused, int64_t* layers) {
    auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                        {"norm.name=bcn", "norm.fused=" + fused});
    torch::manual_seed(0);
    auto b = compose::build(exp, c10::Device(c10::kCPU));
    *layers = 0;
    for (const auto& m : b.model->modules(/*include_self=*/false)) {
      if (auto bcn = std::dynamic_pointer_cast<BcnImpl>(m)) {
        EXPECT_EQ(bcn->options().fused, fused == "true");
        ++*layers;
      }
    }
    auto data = b.dataset->load();
    auto x = data.train_x.slice(0, 0, 16).to(torch::kFloat).div(255.0);
    auto loss = torch::nn::functional::cross_entropy(b.model->forward(x),
                                                     data.train_y.slice(0, 0, 16));
    loss.backward();
    std::vector<torch::Tensor> g{loss.detach().reshape({1})};
    for (const auto& p : b.model->parameters()) g.push_back(p.grad().flatten());
    return torch::cat(g);
  };
  int64_t fused_layers = 0, chain_layers = 0;
  auto fused = gradients("true", &fused_layers);
  auto chain = gradients("false", &chain_layers);
  EXPECT_GT(fused_layers, 5);
  EXPECT_EQ(fused_layers, chain_layers);
  ASSERT_EQ(fused.sizes(), chain.sizes());
  EXPECT_LT((fused - chain).abs().max().item<double>(),
            1e-4 * (1.0 + chain.abs().max().item<double>()));
}

// Every norm.* key of the bcn scheme must reach every layer the scheme builds: a key the
// scheme drops runs the default silently, and the run's hash (which has the key) lies about
// it. Checked through behaviour where the layer shows it: without the sqrt(d) scaling and
// the affine map each position's output lies in Theorem 1's band [1 - alpha, 1]; with
// stats: batch, two training passes over one batch leave running_mean at
// (1 - (1 - m)^2) mu = m (2 - m) mu, so its ratio to the first pass's m mu is 2 - m.
TEST(Bcn, SchemeKeysReachEveryLayer) {
  testing::TempDir dir;
  const double alpha = 0.3, momentum = 0.5;
  auto exp = testing::experiment_from(
      dir, testing::kTinyYaml,
      {"norm.name=bcn", "norm.scale_by_sqrt_dim=false", "norm.affine=false", "norm.stats=batch",
       "norm.momentum=0.5", "norm.alpha=0.3", "norm.bound=clip", "norm.eps=0.001"});
  torch::manual_seed(0);
  auto b = compose::build(exp, c10::Device(c10::kCPU));
  std::vector<std::shared_ptr<BcnImpl>> layers;
  for (const auto& m : b.model->modules(/*include_self=*/false))
    if (auto bcn = std::dynamic_pointer_cast<BcnImpl>(m)) layers.push_back(bcn);
  ASSERT_GT(layers.size(), 5u);
  for (const auto& bcn : layers) {
    const BcnOptions& o = bcn->options();
    EXPECT_FALSE(o.scale_by_sqrt_dim);
    EXPECT_FALSE(o.affine);
    EXPECT_FALSE(bcn->weight.defined() || bcn->bias.defined()) << "affine parameters built";
    EXPECT_TRUE(o.stats == BcnStats::Batch && o.bound == BcnBound::Clip);
    EXPECT_DOUBLE_EQ(o.alpha, alpha);
    EXPECT_DOUBLE_EQ(o.eps, 1e-3);
    EXPECT_DOUBLE_EQ(o.momentum, momentum);
    auto x = torch::randn({3, o.features, 4, 4}) * 5;
    const auto norms = bcn->forward(x).norm(2, 1);
    EXPECT_GE(norms.min().item<double>(), 1 - alpha - 1e-5);
    EXPECT_LE(norms.max().item<double>(), 1 + 1e-5);
  }
  b.model->train();
  auto x = torch::randn({8, 3, 8, 8});
  for (const auto& bcn : layers) bcn->running_mean.zero_();
  b.model->forward(x);
  std::vector<double> first;
  for (const auto& bcn : layers) first.push_back(bcn->running_mean.item<double>());
  b.model->forward(x);
  for (size_t l = 0; l < layers.size(); ++l) {
    ASSERT_GT(std::abs(first[l]), 1e-6) << "layer " << l;
    EXPECT_NEAR(layers[l]->running_mean.item<double>() / first[l], 2 - momentum, 1e-4)
        << "layer " << l;
  }
}

// norm.vector: sample reaches every conv-map BCN (not the transformer's token norms), is
// refused with stats: tokens (degenerate: one magnitude per sample) at the key, and leaves
// the hash of every existing run (the default) as it was.
TEST(Bcn, VectorKeyReachesConvMapsAndRefusesPerSampleStatistics) {
  testing::TempDir dir;
  auto build = [&](std::vector<std::string> sets, std::string yaml = testing::kTinyYaml) {
    sets.insert(sets.begin(), "norm.name=bcn");
    auto exp = testing::experiment_from(dir, yaml, sets);
    torch::manual_seed(0);
    return compose::build(exp, c10::Device(c10::kCPU));
  };
  auto b = build({"norm.vector=sample", "norm.stats=batch"});
  int64_t whole = 0;
  for (const auto& m : b.model->modules(false))
    if (auto bcn = std::dynamic_pointer_cast<BcnImpl>(m)) {
      EXPECT_TRUE(bcn->options().vector == BcnVector::Sample);
      ++whole;
    }
  EXPECT_GT(whole, 5);
  // Through the model: one s per sample at every layer.
  auto x = torch::randn({6, 3, 8, 8});
  b.model->forward(x);
  for (const auto& m : b.model->modules(false))
    if (auto bcn = std::dynamic_pointer_cast<BcnImpl>(m))
      EXPECT_EQ(bcn->last_scale().numel(), 6);
  try {
    build({"norm.vector=sample"});
    ADD_FAILURE() << "vector: sample with stats: tokens accepted";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.issues().size(), 1u);
    EXPECT_EQ(e.issues()[0].path, "norm.vector");
    EXPECT_NE(e.issues()[0].message.find("norm.stats: batch"), std::string::npos);
  }
  const auto hash = [&](std::vector<std::string> sets) {
    sets.insert(sets.begin(), "norm.name=bcn");
    return testing::experiment_from(dir, testing::kTinyYaml, sets).hash();
  };
  EXPECT_EQ(hash({"norm.vector=position"}), hash({}));
  EXPECT_NE(hash({"norm.vector=sample", "norm.stats=batch"}), hash({"norm.stats=batch"}));
  // A transformer keeps its tokens as the vectors.
  std::string vit_yaml = testing::kTinyYaml;
  const std::string cnn = "model: {name: cnn9, width: 0.125}";
  vit_yaml.replace(vit_yaml.find(cnn), cnn.size(),
                   "model: {name: vit, patch: 4, dim: 32, depth: 1, heads: 2, mlp_dim: 64}");
  auto vit = build({"norm.vector=sample", "norm.stats=batch"}, vit_yaml);
  int64_t tokens = 0;
  for (const auto& m : vit.model->modules(false))
    if (auto bcn = std::dynamic_pointer_cast<BcnImpl>(m)) {
      EXPECT_TRUE(bcn->options().layout == BcnLayout::Tokens &&
                  bcn->options().vector == BcnVector::Position);
      ++tokens;
    }
  EXPECT_GT(tokens, 1);
}

}  // namespace
}  // namespace normexp::nn
