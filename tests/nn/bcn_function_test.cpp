// BCN as one autograd function (nn/bcn_function.h): the same forward and gradients as the op
// chain it replaces (BcnImpl::forward_reference), gradients against central differences, and
// Theorem 1 (Markou) on the fused band map.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backend/cuda_backend.h"
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

Bcn make(int64_t d, BcnStats stats, BcnBound bound, BcnLayout layout, bool fused = true,
         BcnVector vector = BcnVector::Position) {
  BcnOptions o;
  o.features = d;
  o.layout = layout;
  o.vector = vector;
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
           {"tiny", tok({2, 4, d}) * 1e-30},
           // ~1/m^2 overflows below 1e-154: dL/dx must not go through it
           {"tinier than 1e-154", tok({2, 4, d}) * 1e-200}};
  } else {
    auto mixed = tok({3, d, 2, 3});
    mixed.select(0, 1).select(2, 0).mul_(1e30);   // positions (h, 0) of sample 1
    mixed.select(0, 1).select(2, 1).mul_(1e-30);  // positions (h, 1)
    mixed.select(0, 2).select(1, 0).select(1, 2).zero_();
    out = {{"mixed", mixed},
           {"batch of one", tok({1, d, 3, 3})},
           {"(N, C) maps", tok({4, d})},
           {"1-d positions", tok({2, d, 5})},
           {"more than a block of positions", tok({2, d, 65, 64})},  // 4096 + 64
           {"huge", tok({2, d, 2, 2}) * 1e30},
           {"tiny", tok({2, d, 2, 2}) * 1e-30},
           // ~1/m^2 overflows below 1e-154: dL/dx must not go through it
           {"tinier than 1e-154", tok({2, d, 2, 2}) * 1e-200},
           // every position's vector zero, and with vector: sample a zero whole map
           {"a zero sample", tok({3, d, 4, 5}) * torch::tensor({1.0, 0.0, 2.0}, torch::kDouble)
                                                     .view({3, 1, 1, 1})},
           // Whole maps long enough for the CUDA kernels to split into segments, whose sums
           // of squares overflow or underflow double (the combined norm must be rescaled).
           {"long map x1e200", tok({2, d, 65, 64}) * 1e200},
           {"long map x1e-200", tok({2, d, 65, 64}) * 1e-200}};
  }
  return out;
}

// The "long map x1e200" and "x1e-200" inputs: beyond float's range (inf, 0), and the batch
// variance of their magnitudes overflows or underflows double too.
bool long_map_extreme(const std::string& name) {
  return name.rfind("long map x", 0) == 0;
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

Bcn on_device(const Bcn& b, const torch::Device& device) {
  return Bcn(std::dynamic_pointer_cast<BcnImpl>(b->clone(device)));
}

Grads to_cpu(const Grads& g) {
  auto c = [](const torch::Tensor& t) { return t.defined() ? t.cpu() : t; };
  return {c(g.y), c(g.dx), c(g.dw), c(g.db), c(g.dmw), c(g.dmb), c(g.scale)};
}

// The fused result against the op chain's, both float64: y, every gradient and s to 1e-10.
void expect_equal_in_float64(const Grads& got, const Grads& ref, BcnLayout layout, int64_t d,
                             BcnStats stats, bool extras) {
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
    return;
  }
  ASSERT_TRUE(got.dmw.defined() && got.dmb.defined());
  // literal: dL/dgamma is exactly 0 in both (m - mu = 0)
  EXPECT_NEAR(got.dmw.item<double>(), ref.dmw.item<double>(),
              1e-10 * std::max(1.0, std::abs(ref.dmw.item<double>())));
  EXPECT_NEAR(got.dmb.item<double>(), ref.dmb.item<double>(),
              1e-10 * std::max(1.0, std::abs(ref.dmb.item<double>())));
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
              expect_equal_in_float64(got, ref, layout, d, stats, extras);
            }
}

// Catches a running-estimate update that differs from the op chain's (biased variance, the
// momentum, the magnitudes it is taken over).
TEST(BcnFunction, BatchStatisticsUpdateTheRunningEstimatesAsTheOpChain) {
  for (auto layout : kLayouts) {
    auto fused = make(7, BcnStats::Batch, BcnBound::Tanh, layout, true);
    auto chain = make(7, BcnStats::Batch, BcnBound::Tanh, layout, false);
    for (const auto& [name, x] : inputs(layout)) {
      if (name == "huge" || name == "tiny" || name == "mixed" || long_map_extreme(name))
        continue;  // running var: inf/0
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
            if (dtype == torch::kFloat && long_map_extreme(name)) continue;  // inf
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

// vector: sample (a sample's whole C*H*W map is the one vector): the fused path, with the
// per-channel affine applied after the function, against the op chain in float64, against
// central differences, and Theorem 1 per sample. Catches a reshape that mixes samples, an
// affine indexed per element instead of per channel, a sqrt(d) scale with d = C instead of
// C*H*W, and statistics taken per sample (degenerate) instead of over the batch.
Bcn make_whole_sample(BcnStats stats, BcnBound bound, bool fused) {
  return make(7, stats, bound, BcnLayout::Channels, fused, BcnVector::Sample);
}

double rel_err_per_sample(const torch::Tensor& a, const torch::Tensor& b) {
  auto A = a.reshape({a.size(0), -1}), B = b.reshape({b.size(0), -1});
  auto scale = B.abs().amax({1}, true).clamp_min(1e-300);
  return ((A - B).abs() / scale).max().item<double>();
}

// The fused function on `device` (whole maps with their per-channel affine folded in: runs of
// H*W entries sharing a weight) against the CPU op chain, both float64.
void expect_whole_sample_equals_the_op_chain(const torch::Device& device) {
  for (auto stats : {BcnStats::Batch, BcnStats::Literal, BcnStats::None})
    for (auto bound : kBounds)
      for (bool train : {true, false})
        for (bool extras : {true, false})
          for (const auto& [name, x] : inputs(BcnLayout::Channels)) {
            SCOPED_TRACE(label(stats, bound, BcnLayout::Channels) + " " + name +
                         (train ? " train" : " eval") + (extras ? " forward" : " core"));
            auto b = make_whole_sample(stats, bound, /*fused=*/true);
            auto bd = on_device(b, device);
            b->train(train);
            bd->train(train);
            auto w = torch::randn_like(x);
            const auto ref = run(b, x, w, /*reference=*/true, extras);
            const auto got = to_cpu(run(bd, x.to(device), w.to(device), false, extras));
            EXPECT_LT(rel_err_per_sample(got.y, ref.y), 1e-10);
            EXPECT_LT(rel_err_per_sample(got.dx, ref.dx), 1e-10);
            EXPECT_LT(rel_err_flat(got.scale, ref.scale), 1e-10);
            EXPECT_EQ(got.scale.numel(), x.size(0));  // one s per sample
            if (extras) {
              EXPECT_LT(rel_err_flat(got.dw, ref.dw), 1e-10);
              EXPECT_LT(rel_err_flat(got.db, ref.db), 1e-10);
            }
            // (tiny maps: a magnitude variance far below eps leaves m~ = beta, as it should;
            // 1e200 maps: their variance overflows to inf, which does the same)
            if (stats == BcnStats::Batch && train && x.size(0) > 1 &&
                name.find("tin") == std::string::npos && !long_map_extreme(name))
              EXPECT_GT(got.scale.max().item<double>() - got.scale.min().item<double>(), 1e-6)
                  << "samples of different magnitude got the same s";
            if (!extras) {  // Theorem 1 over the whole sample
              auto n = got.y.reshape({x.size(0), -1}).norm(2, {1});
              EXPECT_GE(n.min().item<double>(), 0.7 * (1 - 1e-9));
              EXPECT_LE(n.max().item<double>(), 1 + 1e-9);
            }
          }
}

TEST(BcnFunction, WholeSampleVectorEqualsTheOpChainAndKeepsTheBandPerSample) {
  expect_whole_sample_equals_the_op_chain(torch::Device(torch::kCPU));
  // Central differences (the chain could share a mistake in the reshape with the function).
  torch::manual_seed(6);
  auto b = make_whole_sample(BcnStats::Batch, BcnBound::Tanh, /*fused=*/true);
  auto x = torch::randn({3, 7, 2, 2}, torch::kDouble) *
           torch::tensor({0.5, 1.0, 2.0}, torch::kDouble).view({3, 1, 1, 1});
  auto w = torch::randn_like(x);
  const auto got = run(b, x, w, /*reference=*/false, /*extras=*/true);
  const double h = 1e-6;
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    auto xp = x.clone(), xm = x.clone();
    xp.view({-1})[i] += h;
    xm.view({-1})[i] -= h;
    torch::NoGradGuard g;
    const double num = ((w * b->forward(xp)).sum() - (w * b->forward(xm)).sum()).item<double>() / (2 * h);
    worst = std::max(worst, std::abs(num - got.dx.view({-1})[i].item<double>()));
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_THROW(make_whole_sample(BcnStats::Tokens, BcnBound::Tanh, true), std::invalid_argument);
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

// Catches a build whose BCN loops lost OpenMP (at::parallel_for is inline and then runs
// serially: every BCN layer on one thread whatever the thread setting, as the fused function
// ran until 2026-12-02), and per-thread buffers (the affine's dL/dw, dL/db) indexed wrong once
// the loops really split: one and two threads give the same y and gradients (float64, 1e-12)
// in the per-sample schedule and in the global one (batch statistics; a batch of one).
TEST(BcnFunction, RunsOnLibTorchsThreadsWithTheSameResults) {
  EXPECT_TRUE(bcn_fused_cpu_parallel());
  const int threads_before = at::get_num_threads();
  const int64_t d = 7;
  for (auto layout : kLayouts)
    for (auto stats : {BcnStats::Tokens, BcnStats::Batch})
      for (int64_t n : {4, 1}) {
        SCOPED_TRACE(label(stats, BcnBound::Tanh, layout) + " N=" + std::to_string(n));
        torch::manual_seed(5);
        const auto x = layout == BcnLayout::Tokens ? torch::randn({n, 300, d}, torch::kDouble)
                                                   : torch::randn({n, d, 70, 70}, torch::kDouble);
        const auto w = torch::randn_like(x);
        std::vector<Grads> got;
        for (int t : {1, 2}) {
          at::set_num_threads(t);
          torch::manual_seed(6);  // the same affine weights for both
          auto b = make(d, stats, BcnBound::Tanh, layout);
          got.push_back(run(b, x, w, /*reference=*/false, /*extras=*/true));
        }
        at::set_num_threads(threads_before);
        expect_equal_in_float64(got[1], got[0], layout, d, stats, true);
        EXPECT_LT(rel_err(got[1].y, got[0].y, layout, d), 1e-12);
        EXPECT_LT(rel_err(got[1].dx, got[0].dx, layout, d), 1e-12);
        EXPECT_LT(rel_err_flat(got[1].dw, got[0].dw), 1e-12);
        EXPECT_LT(rel_err_flat(got[1].db, got[0].db), 1e-12);
      }
}

// ---------------------------------------------------------------------------------------
// CUDA (nn/bcn_cuda.cu): skipped without a device.

#define NORMEXP_NEEDS_CUDA()        \
  if (!torch::cuda::is_available()) \
  GTEST_SKIP() << "BCN's CUDA kernels: no CUDA device (or a CPU-only LibTorch)"

// The same module on the device (parameters and running estimates copied).
// Vectors so small that c s / m overflows their dtype: float32 vectors of subnormal entries
// (m below ~3e-39: 1/m beyond float's largest value) and float64 vectors of subnormal m.
// Computed as (c s / m) * x, y would be inf * x; the fused function must give the op chain's
// finite y, in Theorem 1's band, and finite dL/dw, dL/db. Such a vector's own dL/dx is ~c/m
// (beyond the dtype in both paths) and not compared; every other vector's must still equal
// the op chain's, in samples with and without a tiny vector. Catches a per-vector scale that
// overflows (before split_scale the function returned inf and NaN here), and a prescale of x
// applied to the wrong vector or position of a block. Tolerances: m of a float64 vector of
// subnormal entries carries ~27 bits (1e-7); on CUDA a float vector's m is itself a float
// subnormal (~13 bits at 1e-41: 1e-3); else float rounding.
void expect_tiny_vectors_keep_their_direction(const torch::Device& device) {
  const int64_t d = 7;
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    const bool single = dtype == torch::kFloat;
    const double tiny = single ? 1e-41 : 1e-315;
    const double tol = !single ? 1e-7 : device.is_cuda() ? 1e-3 : 1e-5;
    for (auto layout : kLayouts)
      for (auto stats : kStats)
        for (auto bound : kBounds)
          for (bool train : {true, false}) {
            SCOPED_TRACE(label(stats, bound, layout) + (single ? " float32" : " float64") +
                         (train ? " train" : " eval"));
            torch::manual_seed(7);
            auto x = layout == BcnLayout::Tokens ? torch::randn({3, 5, d}, dtype)
                                                 : torch::randn({3, d, 2, 3}, dtype);
            if (layout == BcnLayout::Tokens)
              x.select(0, 1).select(0, 0).mul_(tiny);  // one tiny vector among ordinary ones
            else
              x.select(0, 1).select(2, 0).mul_(tiny);  // positions (h, 0) of sample 1
            x.select(0, 2).mul_(tiny);                 // a sample of tiny vectors only
            ASSERT_GT(x.abs().max().item<double>(), 0.1);
            const auto x64 = x.to(torch::kDouble);  // the same numbers
            auto b = make(d, stats, bound, layout);
            auto bd = on_device(b, device);
            bd->to(dtype);
            b->train(train);
            bd->train(train);
            const auto w = torch::randn_like(x64);
            const auto ref = run(b, x64, w, /*reference=*/true, /*extras=*/true);
            const auto got = to_cpu(run(bd, x.to(device), w.to(device).to(dtype), false, true));
            const auto y = got.y.to(torch::kDouble);
            ASSERT_TRUE(torch::isfinite(y).all().item<bool>());
            EXPECT_LT(rel_err(y, ref.y, layout, d), tol);
            // Theorem 1 on the core's output (the affine moves the norms): ||y|| in [0.7, 1].
            const auto core = bd->core(x.to(device)).cpu().to(torch::kDouble);
            const auto n = rows(core, layout, d).norm(2, {1});
            EXPECT_GE(n.min().item<double>(), 0.7 * (1 - tol));
            EXPECT_LE(n.max().item<double>(), 1 + tol);
            EXPECT_LT(rel_err_flat(got.dw.to(torch::kDouble), ref.dw), tol * 10);
            EXPECT_LT(rel_err_flat(got.db.to(torch::kDouble), ref.db), tol * 10);
            const auto ordinary = rows(x64, layout, d).norm(2, {1}) > 1e-30;
            ASSERT_EQ(ordinary.sum().item<int64_t>(), layout == BcnLayout::Tokens ? 9 : 10);
            const auto dx = rows(got.dx.to(torch::kDouble), layout, d).index({ordinary});
            const auto rdx = rows(ref.dx, layout, d).index({ordinary});
            EXPECT_TRUE(torch::isfinite(dx).all().item<bool>());
            EXPECT_LT(rel_err(dx, rdx, BcnLayout::Tokens, d), tol * 100);
          }
  }
}

TEST(BcnFunction, VectorsTooSmallForOneOverMKeepTheirDirection) {
  expect_tiny_vectors_keep_their_direction(torch::Device(torch::kCPU));
}

// float64 inputs for the device: every shape of inputs() and more widths, with 1e200, 1e-200
// and zero vectors (beyond what float32 holds: the rescaled norm and the gradient's C2 x / m
// form, whose B2 = C2 / m would overflow at 1e-200). d = 5 and 7 are not multiples of any
// vector width, 768 is; P = 16 is, 9 and 81 are not.
std::vector<std::pair<std::string, torch::Tensor>> device_inputs(BcnLayout layout, int64_t d) {
  torch::manual_seed(11 + d);
  auto r = [&](std::vector<int64_t> s) { return torch::randn(s, torch::kDouble); };
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (layout == BcnLayout::Tokens) {
    auto mixed = r({3, 5, d});
    mixed.select(0, 1).select(0, 0).mul_(1e200);
    mixed.select(0, 1).select(0, 1).mul_(1e-200);
    mixed.select(0, 1).select(0, 2).zero_();
    mixed.select(0, 2).select(0, 4).zero_();
    out = {{"mixed", mixed},
           {"batch of one", r({1, 5, d})},
           {"one vector per sample (N, D)", r({4, d})},
           {"4-d tokens", r({2, 2, 3, d})},
           {"more vectors than a block's warps", r({3, 37, d})},
           {"huge", r({2, 4, d}) * 1e200},
           {"tiny", r({2, 4, d}) * 1e-200}};
  } else {
    auto mixed = r({3, d, 2, 3});
    mixed.select(0, 1).select(2, 0).mul_(1e200);
    mixed.select(0, 1).select(2, 1).mul_(1e-200);
    mixed.select(0, 2).select(1, 0).select(1, 2).zero_();
    out = {{"mixed", mixed},
           {"batch of one", r({1, d, 3, 3})},
           {"(N, C) maps", r({4, d})},
           {"1-d positions", r({2, d, 5})},
           {"P = 16", r({2, d, 4, 4})},
           {"P = 81", r({2, d, 9, 9})},
           {"huge", r({2, d, 2, 2}) * 1e200},
           {"tiny", r({2, d, 2, 2}) * 1e-200}};
  }
  return out;
}

// Catches any difference between the CUDA kernels and the op chain (so also the CPU function):
// index arithmetic of either layout, short vectors (D < 32, D not a multiple of the vector
// width), a sample of one vector, blocks with fewer vectors than warps, the rescaled norm,
// zero vectors, every group of magnitude statistics, the affine's column reductions, and
// dL/dgamma, dL/dbeta's reductions.
void expect_fused_equals_the_op_chain_in_float64(const torch::Device& cuda) {
  for (int64_t d : {5, 7, 768})
    for (auto layout : kLayouts)
      for (const auto& [name, x] : device_inputs(layout, d))
        for (auto stats : kStats)
          for (auto bound : kBounds)
            for (bool train : {true, false})
              for (bool extras : {true, false}) {
                SCOPED_TRACE(label(stats, bound, layout) + " d=" + std::to_string(d) + " " + name +
                             (train ? " train" : " eval") + (extras ? " forward" : " core"));
                auto b = make(d, stats, bound, layout);  // run(reference) takes its op chain
                auto bd = on_device(b, cuda);            // fused
                b->train(train);
                bd->train(train);
                auto w = torch::randn_like(x);
                const auto ref = run(b, x, w, /*reference=*/true, extras);
                const auto got = to_cpu(run(bd, x.to(cuda), w.to(cuda), false, extras));
                expect_equal_in_float64(got, ref, layout, d, stats, extras);
              }
}

TEST(BcnFunction, CudaFloat64EqualsTheOpChain) {
  NORMEXP_NEEDS_CUDA();
  expect_fused_equals_the_op_chain_in_float64(torch::Device(torch::kCUDA));
}

// The same inputs through the CPU function: wider vectors (d = 768, the AVX2 loops' full
// width) and 1e200 magnitudes in a group with ordinary ones (their variance overflows to inf
// in both paths), so the CUDA test's expectations are known to hold for the function itself.
TEST(BcnFunction, CpuFloat64EqualsTheOpChainOnTheDeviceInputs) {
  expect_fused_equals_the_op_chain_in_float64(torch::Device(torch::kCPU));
}

// On CUDA the whole map's affine goes to the kernels as weights repeated along each run.
TEST(BcnFunction, CudaWholeSampleVectorEqualsTheOpChain) {
  NORMEXP_NEEDS_CUDA();
  expect_whole_sample_equals_the_op_chain(torch::Device(torch::kCUDA));
}

TEST(BcnFunction, CudaVectorsTooSmallForOneOverMKeepTheirDirection) {
  NORMEXP_NEEDS_CUDA();
  expect_tiny_vectors_keep_their_direction(torch::Device(torch::kCUDA));
}

// Catches float-only errors: the float accumulation, 16-byte loads of 4 floats (d = 768,
// P = 64), the rescaled norm's float safe range (1e30 and 1e-30 vectors leave it), and the
// running estimates of stats: batch, against the op chain in float64.
TEST(BcnFunction, CudaFloat32AgreesWithTheFloat64OpChain) {
  NORMEXP_NEEDS_CUDA();
  const torch::Device cuda(torch::kCUDA);
  for (auto layout : kLayouts) {
    auto cases = inputs(layout);  // d = 7, with 1e30, 1e-30 and zero vectors
    // 1e-200 is 0 in float: a zero vector there, a direction in the float64 reference (and
    // 1e200 is inf).
    cases.erase(std::remove_if(cases.begin(), cases.end(),
                               [](const auto& c) {
                                 return c.first == "tinier than 1e-154" ||
                                        long_map_extreme(c.first);
                               }),
                cases.end());
    torch::manual_seed(4);
    cases.push_back({"d = 768", layout == BcnLayout::Tokens
                                    ? torch::randn({4, 33, 768}, torch::kDouble)
                                    : torch::randn({2, 768, 8, 8}, torch::kDouble)});
    for (const auto& [name, x] : cases) {
      const int64_t d = layout == BcnLayout::Tokens ? x.size(-1) : x.size(1);
      for (auto stats : kStats)
        for (auto bound : kBounds)
          for (bool train : {true, false})
            for (bool extras : {true, false}) {
              SCOPED_TRACE(label(stats, bound, layout) + " " + name + (train ? " train" : " eval") +
                           (extras ? " forward" : " core"));
              auto b = make(d, stats, bound, layout);
              auto bd = on_device(b, cuda);
              bd->to(torch::kFloat);
              b->train(train);
              bd->train(train);
              auto w = torch::randn_like(x);
              const auto ref = run(b, x, w, /*reference=*/true, extras);
              const auto got = to_cpu(run(bd, x.to(cuda).to(torch::kFloat),
                                          w.to(cuda).to(torch::kFloat), false, extras));
              EXPECT_EQ(got.y.scalar_type(), torch::kFloat);
              EXPECT_LT(rel_err(got.y.to(torch::kDouble), ref.y, layout, d), 1e-5);
              EXPECT_LT(rel_err(got.dx.to(torch::kDouble), ref.dx, layout, d), 1e-4);
              EXPECT_LT(rel_err_flat(got.scale.to(torch::kDouble), ref.scale), 1e-5);
              if (extras) {
                EXPECT_LT(rel_err_flat(got.dw.to(torch::kDouble), ref.dw), 1e-4);
                EXPECT_LT(rel_err_flat(got.db.to(torch::kDouble), ref.db), 1e-4);
              }
              if (stats != BcnStats::None) {
                ASSERT_TRUE(got.dmw.defined() && got.dmb.defined());
                const double gw = got.dmw.item<double>(), rw = ref.dmw.item<double>();
                const double gb = got.dmb.item<double>(), rb = ref.dmb.item<double>();
                EXPECT_NEAR(gw, rw, 1e-3 * std::max(1.0, std::abs(rw)));
                EXPECT_NEAR(gb, rb, 1e-3 * std::max(1.0, std::abs(rb)));
              }
              // Running estimates as on CPU (not for 1e30 magnitudes: their variance is inf
              // in the float buffer and 1e59 in the double one).
              if (stats == BcnStats::Batch && train && name != "mixed" && name != "huge" &&
                  name != "tiny") {
                const double rm = b->running_mean.item<double>();
                const double rv = b->running_var.item<double>();
                EXPECT_NE(rm, 2.0);  // it was updated at all
                EXPECT_NEAR(bd->running_mean.cpu().item<double>(), rm, 1e-5 * std::abs(rm));
                EXPECT_NEAR(bd->running_var.cpu().item<double>(), rv, 1e-5 * std::abs(rv));
              }
            }
    }
  }
}

// bf16/half on the fused CUDA path (no float copy of the tensor: the output and the input's
// gradient keep the dtype; the affine's gradients are float, as its parameters): within bf16
// rounding of float32 on the same rounded inputs, and Theorem 1's band. Catches a wrong
// 16-byte load or store of 8 half values, or a conversion.
TEST(BcnFunction, HalfPrecisionInputsOnCuda) {
  NORMEXP_NEEDS_CUDA();
  const torch::Device cuda(torch::kCUDA);
  // d = 64 and 8 x 8 maps: 16-byte loads of 8 values; d = 36 and 6 x 6 maps: single values.
  for (int64_t d : {64, 36})
    for (auto dtype : {torch::kBFloat16, torch::kHalf})
      for (auto layout : kLayouts)
        for (bool extras : {false, true}) {
          SCOPED_TRACE(std::string(dtype == torch::kHalf ? "half " : "bf16 ") +
                       label(BcnStats::Tokens, BcnBound::Tanh, layout) + " d=" +
                       std::to_string(d) + (extras ? " forward" : " core"));
          auto b = make(d, BcnStats::Tokens, BcnBound::Tanh, layout);
          b->to(torch::kFloat);
          auto bd = on_device(b, cuda);
          torch::manual_seed(9);
          const int64_t hw = d == 64 ? 8 : 6;
          auto x = (layout == BcnLayout::Tokens ? torch::randn({4, 16, d})
                                                : torch::randn({4, d, hw, hw}))
                       .to(cuda)
                       .to(dtype);
          auto w = torch::randn_like(x);
          const auto got = run(bd, x, w, /*reference=*/false, extras);
          const auto ref = run(bd, x.to(torch::kFloat), w.to(torch::kFloat), false, extras);
          EXPECT_EQ(got.y.scalar_type(), dtype);
          EXPECT_EQ(got.dx.scalar_type(), dtype);
          auto f = [](const torch::Tensor& t) { return t.to(torch::kFloat).cpu(); };
          EXPECT_LT(rel_err(f(got.y), f(ref.y), layout, d), 2e-2);
          EXPECT_LT(rel_err(f(got.dx), f(ref.dx), layout, d), 3e-2);
          EXPECT_TRUE(torch::isfinite(got.dx).all().item<bool>());
          if (extras) {
            EXPECT_EQ(got.dw.scalar_type(), torch::kFloat);
            EXPECT_LT(rel_err_flat(f(got.dw), f(ref.dw)), 2e-2);
            EXPECT_LT(rel_err_flat(f(got.db), f(ref.db)), 2e-2);
          } else {
            auto n = rows(f(got.y), layout, d).norm(2, {1});
            EXPECT_GE(n.min().item<double>(), 0.7 * (1 - 1e-2));
            EXPECT_LE(n.max().item<double>(), 1 + 1e-2);
          }
        }
}

// Catches a host synchronization (a .item(), gamma or the running estimates read on the
// host) or an allocation outside the caching allocator on the CUDA path: a BCN layer's
// forward and backward captured in a CUDA graph replay to what an eager pass gives, and
// recompute after the input changes.
TEST(BcnFunction, CudaForwardAndBackwardCaptureInAGraph) {
  NORMEXP_NEEDS_CUDA();
  const torch::Device cuda(torch::kCUDA);
  const int64_t d = 64;
  const std::pair<BcnStats, bool> cases[] = {{BcnStats::Tokens, true},
                                             {BcnStats::Batch, true},
                                             {BcnStats::Batch, false},
                                             {BcnStats::Literal, true}};
  for (auto layout : kLayouts)
    for (const auto& [stats, train] : cases) {
      SCOPED_TRACE(label(stats, BcnBound::Tanh, layout) + (train ? " train" : " eval"));
      auto b = on_device(make(d, stats, BcnBound::Tanh, layout), cuda);
      b->to(torch::kFloat);
      b->train(train);
      const auto opts = torch::TensorOptions().device(cuda).dtype(torch::kFloat);
      const std::vector<int64_t> shape = layout == BcnLayout::Tokens
                                             ? std::vector<int64_t>{8, 16, d}
                                             : std::vector<int64_t>{8, d, 4, 4};
      torch::manual_seed(2);
      auto x = torch::randn(shape, opts).requires_grad_(true);
      const auto w = torch::randn(shape, opts);
      const std::vector<torch::Tensor> wrt = {x, b->weight, b->bias, b->mag_weight, b->mag_bias};
      std::vector<torch::Tensor> out;
      auto body = [&] {
        auto y = b->forward(x);
        auto g = torch::autograd::grad({(y * w).sum()}, wrt);
        out = {y.detach()};
        out.insert(out.end(), g.begin(), g.end());
      };
      auto copies = [&] {
        std::vector<torch::Tensor> c;
        for (const auto& t : out) c.push_back(t.clone());
        return c;
      };
      auto expect_same = [](const std::vector<torch::Tensor>& a,
                            const std::vector<torch::Tensor>& e) {
        ASSERT_EQ(a.size(), e.size());
        for (size_t i = 0; i < a.size(); ++i) {
          SCOPED_TRACE("output " + std::to_string(i));
          EXPECT_LT(rel_err_flat(a[i].cpu().to(torch::kDouble), e[i].cpu().to(torch::kDouble)),
                    1e-6);
        }
      };
      body();  // eager: also the warm-up before capture
      const auto eager1 = copies();
      normexp::cuda::Graph graph;
      ASSERT_NO_THROW(graph.capture(body));
      graph.replay();
      expect_same(copies(), eager1);
      {
        torch::NoGradGuard no_grad;
        x.copy_(torch::randn(shape, opts) * 3);
      }
      graph.replay();
      const auto replayed = copies();
      body();
      expect_same(replayed, copies());
      EXPECT_GT(rel_err_flat(replayed[1].cpu(), eager1[1].cpu()), 1e-3);  // it recomputed
    }
}

}  // namespace
}  // namespace normexp::nn
