// BCN as one autograd function (nn/bcn_function.h): the same forward and gradients as the op
// chain it replaces (BcnImpl::forward_reference), gradients against central differences, and
// Theorem 1 (Markou) on the fused band map.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "nn/bcn.h"
#include "nn/bcn_function.h"

namespace normexp::nn {
namespace {

const BcnStats kStats[] = {BcnStats::Tokens, BcnStats::Batch, BcnStats::Literal, BcnStats::None};
const BcnBound kBounds[] = {BcnBound::Tanh, BcnBound::Clip};
const BcnLayout kLayouts[] = {BcnLayout::Tokens, BcnLayout::Channels};

std::string label(BcnStats s, BcnBound b, BcnLayout l) {
  const char* stats[] = {"tokens", "batch", "literal", "none"};
  return std::string(stats[static_cast<int>(s)]) + (b == BcnBound::Tanh ? "/tanh" : "/clip") +
         (l == BcnLayout::Tokens ? "/tokens-layout" : "/channels-layout");
}

Bcn make(int64_t d, BcnStats stats, BcnBound bound, BcnLayout layout, bool fused = true) {
  BcnOptions o;
  o.features = d;
  o.layout = layout;
  o.stats = stats;
  o.bound = bound;
  o.alpha = 0.3;
  o.fused = fused;
  Bcn b(o);
  b->to(torch::kDouble);
  torch::NoGradGuard g;  // non-trivial parameters: gamma 1.3 spreads m~ across clip's kinks
  b->mag_weight.fill_(1.3);
  b->mag_bias.fill_(0.2);
  b->weight.uniform_(0.5, 1.5);
  b->bias.uniform_(-0.5, 0.5);
  if (stats == BcnStats::Batch) {
    b->running_mean.fill_(2.0);
    b->running_var.fill_(0.7);
  }
  return b;
}

// Rows of D features, whichever the layout.
torch::Tensor rows(const torch::Tensor& t, BcnLayout layout, int64_t d) {
  return (layout == BcnLayout::Channels ? t.movedim(1, -1) : t).reshape({-1, d});
}

// Largest |a - b| relative to the largest |b| of the same vector: a 1e30 vector and a 1e-30
// one in the same tensor are each held to their own scale.
double rel_err(const torch::Tensor& a, const torch::Tensor& b, BcnLayout layout, int64_t d) {
  auto A = rows(a, layout, d), B = rows(b, layout, d);
  auto scale = B.abs().amax({1}, true).clamp_min(1e-300);
  return ((A - B).abs() / scale).max().item<double>();
}

double rel_err_flat(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

// float64 inputs with huge, tiny and zero vectors; D = 7 features.
std::vector<std::pair<std::string, torch::Tensor>> inputs(BcnLayout layout) {
  torch::manual_seed(3);
  const int64_t d = 7;
  auto tok = [&](std::vector<int64_t> s) { return torch::randn(s, torch::kDouble); };
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (layout == BcnLayout::Tokens) {
    auto mixed = tok({3, 5, d});
    mixed.select(0, 1).select(0, 0).mul_(1e30);
    mixed.select(0, 1).select(0, 1).mul_(1e-30);
    mixed.select(0, 1).select(0, 2).zero_();
    mixed.select(0, 2).mul_(torch::logspace(-3, 3, 5, 10, torch::kDouble).view({5, 1}));
    out = {{"mixed", mixed},
           {"batch of one", tok({1, 5, d})},
           {"one vector per sample (N, D)", tok({4, d})},
           {"4-d tokens", tok({2, 2, 3, d})},
           {"huge", tok({2, 4, d}) * 1e30},
           {"tiny", tok({2, 4, d}) * 1e-30}};
  } else {
    auto mixed = tok({3, d, 2, 3});
    mixed.select(0, 1).select(2, 0).mul_(1e30);   // positions (h, 0) of sample 1
    mixed.select(0, 1).select(2, 1).mul_(1e-30);  // positions (h, 1)
    mixed.select(0, 2).select(1, 0).select(1, 2).zero_();
    out = {{"mixed", mixed},
           {"batch of one", tok({1, d, 3, 3})},
           {"(N, C) maps", tok({4, d})},
           {"1-d positions", tok({2, d, 5})},
           {"more than a block of positions", tok({2, d, 9, 9})},
           {"huge", tok({2, d, 2, 2}) * 1e30},
           {"tiny", tok({2, d, 2, 2}) * 1e-30}};
  }
  return out;
}

struct Grads {
  torch::Tensor y, dx, dw, db, dmw, dmb, scale;
};

Grads run(Bcn& b, const torch::Tensor& x, const torch::Tensor& w, bool reference, bool extras) {
  for (auto& p : b->parameters()) p.mutable_grad() = torch::Tensor();
  auto xg = x.clone().requires_grad_(true);
  auto y = reference ? (extras ? b->forward_reference(xg) : b->core_reference(xg))
                     : (extras ? b->forward(xg) : b->core(xg));
  (y * w).sum().backward();
  Grads g{y.detach(), xg.grad(), b->weight.grad(), b->bias.grad(),
          b->mag_weight.grad(), b->mag_bias.grad(), b->last_scale().clone()};
  return g;
}

// Catches any difference between the closed-form backward and the op chain's autograd: a wrong
// term of §4.1 (the direction projection, sech^2 vs clip's indicator, the magnitude
// LayerNorm's mean terms, eval's constant statistics), the zero-vector convention, a wrong
// group of magnitudes, the affine or sqrt(d) folding, or a wrong layout/block index.
TEST(BcnFunction, ForwardAndBackwardEqualTheOpChain) {
  const int64_t d = 7;
  for (auto layout : kLayouts)
    for (auto stats : kStats)
      for (auto bound : kBounds)
        for (bool train : {true, false})
          for (bool extras : {true, false})
            for (const auto& [name, x] : inputs(layout)) {
              SCOPED_TRACE(label(stats, bound, layout) + " " + name + (train ? " train" : " eval") +
                           (extras ? " forward" : " core"));
              auto b = make(d, stats, bound, layout);
              b->train(train);
              auto w = torch::randn_like(x);
              const auto ref = run(b, x, w, /*reference=*/true, extras);
              const auto got = run(b, x, w, /*reference=*/false, extras);
              EXPECT_LT(rel_err(got.y, ref.y, layout, d), 1e-10);
              EXPECT_LT(rel_err(got.dx, ref.dx, layout, d), 1e-10);
              EXPECT_LT(rel_err_flat(got.scale, ref.scale), 1e-10);
              EXPECT_EQ(got.scale.sizes(), ref.scale.sizes());
              if (extras) {
                EXPECT_LT(rel_err_flat(got.dw, ref.dw), 1e-10);
                EXPECT_LT(rel_err_flat(got.db, ref.db), 1e-10);
              }
              if (stats == BcnStats::None) {
                EXPECT_FALSE(got.dmw.defined());
              } else {
                ASSERT_TRUE(got.dmw.defined() && got.dmb.defined());
                // literal: dL/dgamma is exactly 0 in both (m - mu = 0)
                EXPECT_NEAR(got.dmw.item<double>(), ref.dmw.item<double>(),
                            1e-10 * std::max(1.0, std::abs(ref.dmw.item<double>())));
                EXPECT_NEAR(got.dmb.item<double>(), ref.dmb.item<double>(),
                            1e-10 * std::max(1.0, std::abs(ref.dmb.item<double>())));
              }
            }
}

// Catches a running-estimate update that differs from the op chain's (biased variance, the
// momentum, the magnitudes it is taken over).
TEST(BcnFunction, BatchStatisticsUpdateTheRunningEstimatesAsTheOpChain) {
  for (auto layout : kLayouts) {
    auto fused = make(7, BcnStats::Batch, BcnBound::Tanh, layout, true);
    auto chain = make(7, BcnStats::Batch, BcnBound::Tanh, layout, false);
    for (const auto& [name, x] : inputs(layout)) {
      if (name == "huge" || name == "tiny" || name == "mixed") continue;  // running var: inf/0
      fused->forward(x);
      chain->forward(x);
    }
    EXPECT_NEAR(fused->running_mean.item<double>(), chain->running_mean.item<double>(), 1e-12);
    EXPECT_NEAR(fused->running_var.item<double>(), chain->running_var.item<double>(), 1e-12);
    EXPECT_NE(fused->running_mean.item<double>(), 2.0);  // it was updated at all
  }
}

// d(sum(w * BCN(x)))/d(x, gamma, beta, weight, bias) of the fused function against central
// differences in float64: catches an error shared by the function and the op chain (the test
// above would not), e.g. a sign or factor in §4.1 the chain's formula also has.
TEST(BcnFunction, GradientsAgreeWithCentralDifferences) {
  torch::manual_seed(5);
  const int64_t d = 5;
  const double h = 1e-6;
  for (auto layout : kLayouts)
    for (auto stats : kStats)
      for (auto bound : kBounds)
        for (bool train : {true, false}) {
          SCOPED_TRACE(label(stats, bound, layout) + (train ? " train" : " eval"));
          auto b = make(d, stats, bound, layout);
          b->train(train);
          auto x = layout == BcnLayout::Tokens ? torch::randn({2, 4, d}, torch::kDouble)
                                               : torch::randn({2, d, 2, 3}, torch::kDouble);
          auto w = torch::randn_like(x);
          // Evaluations below must not move the running estimates the eval pass reads.
          auto f = [&](const torch::Tensor& in) {
            torch::NoGradGuard g;
            return (w * b->forward(in)).sum().item<double>();
          };
          const auto got = run(b, x, w, /*reference=*/false, /*extras=*/true);
          double worst = 0;
          auto flat = x.view({-1});
          for (int64_t i = 0; i < flat.numel(); ++i) {
            auto xp = x.clone(), xm = x.clone();
            xp.view({-1})[i] += h;
            xm.view({-1})[i] -= h;
            const double num = (f(xp) - f(xm)) / (2 * h);
            worst = std::max(worst, std::abs(num - got.dx.view({-1})[i].item<double>()));
          }
          std::vector<std::pair<torch::Tensor, torch::Tensor>> params = {
              {b->weight, got.dw}, {b->bias, got.db}};
          if (stats != BcnStats::None) {
            params.push_back({b->mag_weight, got.dmw});
            params.push_back({b->mag_bias, got.dmb});
          }
          for (auto& [p, g] : params) {
            for (int64_t i = 0; i < p.numel(); ++i) {
              torch::NoGradGuard ng;
              const double v = p.view({-1})[i].item<double>();
              p.view({-1})[i] = v + h;
              const double fp = f(x);
              p.view({-1})[i] = v - h;
              const double fm = f(x);
              p.view({-1})[i] = v;
              worst = std::max(worst, std::abs((fp - fm) / (2 * h) - g.view({-1})[i].item<double>()));
            }
          }
          EXPECT_LT(worst, 1e-6);
        }
}

// Theorem 1 on the fused band map, float32 and float64, every mode, bound and layout, with
// huge, tiny and zero vectors: catches an output pass that scales by the wrong per-vector
// factor (e.g. a vector index off within a block, or 1/m lost to overflow).
TEST(BcnFunction, Theorem1BandHoldsOnEveryOutput) {
  for (auto dtype : {torch::kFloat, torch::kDouble})
    for (auto layout : kLayouts)
      for (auto stats : kStats)
        for (auto bound : kBounds)
          for (const auto& [name, x64] : inputs(layout)) {
            SCOPED_TRACE(label(stats, bound, layout) + " " + name);
            auto b = make(7, stats, bound, layout);
            b->to(dtype);
            auto y = b->core(x64.to(dtype));
            ASSERT_TRUE(torch::isfinite(y).all().item<bool>());
            auto n = rows(y, layout, 7).to(torch::kDouble).norm(2, {1});
            EXPECT_GE(n.min().item<double>(), 0.7 * (1 - 1e-6));
            EXPECT_LE(n.max().item<double>(), 1 + 1e-6);
          }
}

// Catches silently wrong (zero) second derivatives: the closed-form backward is not itself
// recorded by autograd, so a create_graph pass must refuse; the op chain allows it.
TEST(BcnFunction, DoubleBackwardIsRefusedNotSilentlyWrong) {
  auto b = make(5, BcnStats::Tokens, BcnBound::Tanh, BcnLayout::Tokens);
  auto x = torch::randn({2, 3, 5}, torch::kDouble).requires_grad_(true);
  auto y = b->forward(x).pow(2).sum();
  EXPECT_THROW(torch::autograd::grad({y}, {x}, {}, true, /*create_graph=*/true), c10::Error);
  auto chain = make(5, BcnStats::Tokens, BcnBound::Tanh, BcnLayout::Tokens, false);
  auto y2 = chain->forward(x).pow(2).sum();
  EXPECT_NO_THROW(torch::autograd::grad({y2}, {x}, {}, true, /*create_graph=*/true));
}

// bf16/half: the module computes in float32 and casts back (on CUDA through the op chain; the
// fused function is CPU-only). Catches a half input breaking the band or the gradient.
TEST(BcnFunction, HalfPrecisionInputsOnCuda) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "bf16/float16 BCN runs on CUDA only; no CUDA device here";
  for (auto dtype : {torch::kBFloat16, torch::kHalf}) {
    auto b = make(64, BcnStats::Tokens, BcnBound::Tanh, BcnLayout::Tokens);
    b->to(torch::kFloat);
    auto x = torch::randn({4, 16, 64});
    auto ref = b->core_reference(x);
    b->to(torch::Device(torch::kCUDA));
    auto xh = x.to(torch::Device(torch::kCUDA)).to(dtype).requires_grad_(true);
    auto y = b->core(xh);
    EXPECT_EQ(y.scalar_type(), dtype);
    auto n = y.to(torch::kFloat).norm(2, {-1});
    EXPECT_GE(n.min().item<double>(), 0.7 * (1 - 1e-2));
    EXPECT_LE(n.max().item<double>(), 1 + 1e-2);
    EXPECT_LT((y.to(torch::kFloat).cpu() - ref).abs().max().item<double>(), 2e-2);
    y.to(torch::kFloat).pow(2).sum().backward();
    EXPECT_TRUE(torch::isfinite(xh.grad()).all().item<bool>());
  }
}

}  // namespace
}  // namespace normexp::nn
