#include <gtest/gtest.h>
#include <torch/torch.h>

#include <malloc.h>

#include <cmath>

#include "nn/affine_noise.h"
#include "nn/layers.h"
#include "nn/scale_channels.h"
#include "nn/norm_scheme.h"
#include "nn/params.h"

namespace normexp::nn {
namespace {

TEST(ProjectRows, LandsOnSphereAndCentersForAnyLayout) {
  torch::manual_seed(1);
  auto w = torch::randn({8, 5, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast);
  project_rows_(w, {3.0, true, true});
  auto rows = w.contiguous().view({8, -1});
  EXPECT_TRUE(torch::allclose(rows.pow(2).sum(1), torch::full({8}, 3.0), 1e-5, 1e-5));
  EXPECT_LT(rows.sum(1).abs().max().item<double>(), 1e-5);
}

TEST(ProjectRows, IsTheClosestPointOfTheConstraintSet) {
  // For a centered w~, the projection onto {||w||^2 = c, 1^T w = 0} is sqrt(c) w~/||w~||
  // (Ikami et al. 2021, Eq. 11): no other point of the set sampled here is closer.
  torch::manual_seed(2);
  auto w = torch::randn({1, 12});
  auto p = w.clone();
  project_rows_(p, {2.0, true, true});
  const double d = (p - w).norm().item<double>();
  for (int i = 0; i < 200; ++i) {
    auto q = p + 0.05 * torch::randn({1, 12});
    project_rows_(q, {2.0, true, true});
    EXPECT_GE((q - w).norm().item<double>(), d - 1e-6);
  }
}

TEST(AffineNoise, EvalIsExactAffine) {
  AffineNoise a(4);
  a->set_sigma(0.7);
  {
    torch::NoGradGuard g;
    a->weight.copy_(torch::tensor({1.0f, 2.0f, -1.0f, 0.5f}));
    a->bias.copy_(torch::tensor({0.0f, 1.0f, 2.0f, 3.0f}));
  }
  a->eval();
  auto x = torch::randn({3, 4, 5, 5});
  auto y = a->forward(x);
  auto expected = x * a->weight.view({1, 4, 1, 1}) + a->bias.view({1, 4, 1, 1});
  EXPECT_TRUE(torch::equal(y, expected) || torch::allclose(y, expected, 0, 1e-6));
  // And again: no randomness at all in eval mode.
  EXPECT_TRUE(torch::equal(a->forward(x), y));
}

TEST(AffineNoise, TrainingNoiseHasConfiguredStd) {
  torch::manual_seed(3);
  AffineNoise a(8);
  const double sigma = 0.3;
  a->set_sigma(sigma);
  a->train();
  // x = 1, gamma = 1, beta = 0: y - 1 = n ~ N(0, sigma^2), one n per (sample, channel).
  auto x = torch::ones({20000, 8, 1, 1});
  auto n = (a->forward(x) - 1).flatten();
  const double std = n.std().item<double>();
  const double mean = n.mean().item<double>();
  // 160k draws: the std estimate is within ~0.2% of sigma; 2% cannot pass by accident.
  EXPECT_NEAR(std, sigma, 0.02 * sigma);
  EXPECT_NEAR(mean, 0.0, 0.01);
  // Per (sample, channel): all pixels of one sample-channel share the same n.
  auto xs = torch::ones({4, 8, 3, 3});
  auto ys = a->forward(xs);
  EXPECT_TRUE(torch::allclose(ys, ys.select(2, 0).select(2, 0).view({4, 8, 1, 1}).expand_as(ys)));
}

TEST(AffineNoise, NoiseIsRelativeToGammaAsInEquation7) {
  // Ikami et al. 2021 Eq. 7: y = (1 + n) gamma x + beta. The noise scales gamma, so
  // (y - beta) / (gamma x) - 1 = n has std sigma whatever gamma is; an additive
  // (gamma + n) x + beta would give sigma / |gamma| (0.075 and 1.2 here).
  torch::manual_seed(4);
  AffineNoise a(2);
  const double sigma = 0.3;
  a->set_sigma(sigma);
  {
    torch::NoGradGuard g;
    a->weight.copy_(torch::tensor({4.0f, -0.25f}));
    a->bias.copy_(torch::tensor({1.0f, 3.0f}));
  }
  a->train();
  const auto x = torch::full({20000, 2, 1, 1}, 2.0f);
  const auto gamma = a->weight.detach().view({1, 2, 1, 1});
  const auto beta = a->bias.detach().view({1, 2, 1, 1});
  const auto n = ((a->forward(x).detach() - beta) / (gamma * x) - 1).to(torch::kDouble);
  for (int64_t c = 0; c < 2; ++c) {
    SCOPED_TRACE("channel " + std::to_string(c));
    EXPECT_NEAR(n.select(1, c).std().item<double>(), sigma, 0.02 * sigma);
    EXPECT_NEAR(n.select(1, c).mean().item<double>(), 0.0, 0.01);
  }
}

TEST(RemoveRadialRows, LeavesEachRowsTangentPartForAnyRadius) {
  // The Riemannian gradient on the sphere ||w||^2 = c: g - (g.w / ||w||^2) w per output row.
  // c = 3, so a version that forgot to divide by ||w||^2 removes 3x the radial part.
  torch::manual_seed(5);
  auto w = torch::randn({6, 3, 3, 3}, torch::kDouble);
  project_rows_(w, {3.0, true, true});
  const auto g0 = torch::randn({6, 3, 3, 3}, torch::kDouble);
  auto g = g0.clone();
  remove_radial_rows_(g, w);
  const auto wr = w.view({6, -1}), gr = g.view({6, -1}), g0r = g0.view({6, -1});
  EXPECT_LT((gr * wr).sum(1).abs().max().item<double>(), 1e-12);  // tangent to its row
  const auto expected = g0r - wr * ((g0r * wr).sum(1, /*keepdim=*/true) / 3.0);
  EXPECT_TRUE(torch::allclose(gr, expected, 1e-12, 1e-12));
  // A gradient already tangent is left alone.
  auto t = expected.clone();
  remove_radial_rows_(t, wr);
  EXPECT_TRUE(torch::allclose(t, expected, 1e-12, 1e-12));
}

TEST(AffineNoise, PerBatchDrawsOneNoisePerChannel) {
  AffineNoise a(3, /*per_batch=*/true);
  a->set_sigma(0.5);
  a->train();
  auto y = a->forward(torch::ones({16, 3, 2, 2}));
  EXPECT_TRUE(torch::allclose(y, y.select(0, 0).unsqueeze(0).expand_as(y)));
  EXPECT_GT((y - 1).abs().max().item<double>(), 0.0);
}

TEST(AffineNoise, DataInitStartsAsBatchNormOnTheFirstTrainingBatchOnly) {
  torch::manual_seed(0);
  const auto scale = torch::tensor({1.0, 3.0, 0.5}).view({1, 3, 1, 1});
  const auto shift = torch::tensor({2.0, -1.0, 0.0}).view({1, 3, 1, 1});
  const auto x = torch::randn({16, 3, 5, 5}) * scale + shift;
  AffineNoise a(3, false, AffineInit::Data);  // sigma 0: no noise, the affine alone
  // An evaluation before training (other data) does not initialize it: the first training
  // batch does.
  a->eval();
  a->forward(x * 7 + 3);
  EXPECT_TRUE(torch::equal(a->weight, torch::ones({3})));
  a->train();
  const auto y = a->forward(x);
  const auto bn = torch::batch_norm(x, {}, {}, {}, {}, /*training=*/true, 0.1, 1e-5, false);
  EXPECT_TRUE(torch::allclose(y, bn, 1e-4, 1e-5));
  // Later batches do not move it.
  const auto gamma = a->weight.detach().clone();
  a->forward(x * 10);
  EXPECT_TRUE(torch::equal(gamma, a->weight));
  // A layer restored from that state (the "initialized" buffer) keeps the restored values.
  AffineNoise b(3, false, AffineInit::Data);
  {
    torch::NoGradGuard no_grad;
    b->weight.copy_(a->weight);
    b->bias.copy_(a->bias);
    for (auto& buf : b->named_buffers()) buf.value().fill_(1);
  }
  b->forward(x * 10);
  EXPECT_TRUE(torch::equal(gamma, b->weight));
  // The end of a residual branch: scale 0 stays 0 (the block starts as the identity).
  AffineNoise r(3, false, AffineInit::Data, 0.0);
  EXPECT_EQ(r->forward(x).abs().max().item<double>(), 0.0);
}

// The fused affine (BatchNorm's eval-mode kernels) against the closed form, in float64:
// y = f*gamma*x + beta, dL/dx = g*f*gamma, dL/dgamma = sum(g*f*x), dL/dbeta = sum(g), sums over
// everything but the channel. Catches BatchNorm's eps left at its 1e-5 (|y| off by 5e-6
// relative), a noise factor dropped or applied along the wrong axis, a bias or gamma gradient
// reduced over the wrong dims, a channels_last input or a batch of one the kernels mishandle,
// and dL/dx written in another layout than dy's. Every case also against the op chain
// (norm.fused: false) it replaced.
TEST(AffineNoise, FusedEqualsTheClosedFormAndTheOpChain) {
  torch::manual_seed(6);
  const int64_t c = 3;
  const auto dbl = torch::TensorOptions().dtype(torch::kDouble);
  const auto zero = torch::zeros({c}, dbl), one = torch::ones({c}, dbl);
  const std::vector<std::vector<int64_t>> shapes = {{5, c}, {4, c, 7}, {2, c, 4, 5}, {1, c, 3, 3}};
  for (const auto& shape : shapes)
    for (bool channels_last : {false, true})
      for (int noise : {0, 1, 2}) {  // none, per channel, per (sample, channel)
        if (channels_last && shape.size() != 4) continue;
        SCOPED_TRACE(std::to_string(shape.size()) + "-D, noise " + std::to_string(noise) +
                     (channels_last ? ", channels_last" : ""));
        auto x0 = torch::randn(shape, dbl) * 3 + 1;
        auto g = torch::randn(shape, dbl);
        if (channels_last) {
          x0 = x0.contiguous(at::MemoryFormat::ChannelsLast);
          g = g.contiguous(at::MemoryFormat::ChannelsLast);
        }
        torch::Tensor factor;
        if (noise == 1) factor = 1 + 0.5 * torch::randn({c}, dbl);
        if (noise == 2) factor = 1 + 0.5 * torch::randn({shape[0], c}, dbl);
        std::vector<int64_t> view(shape.size(), 1), fview(shape.size(), 1);
        view[1] = fview[1] = c;
        if (noise == 2) fview[0] = shape[0];
        const auto f = factor.defined() ? factor.view(fview) : torch::ones(fview, dbl);
        const auto gamma0 = torch::tensor({1.5, -0.5, 2.0}, dbl);
        const auto beta0 = torch::tensor({0.25, 1.0, -3.0}, dbl);
        std::vector<int64_t> others;
        for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d)
          if (d != 1) others.push_back(d);
        const auto y_ref = f * gamma0.view(view) * x0 + beta0.view(view);
        const auto dx_ref = g * f * gamma0.view(view);
        const auto dgamma_ref = (g * f * x0).sum(others);
        const auto dbeta_ref = g.sum(others);
        for (bool fused : {true, false}) {
          SCOPED_TRACE(fused ? "fused" : "op chain");
          auto x = x0.clone().requires_grad_(true);
          auto gamma = gamma0.clone().requires_grad_(true);
          auto beta = beta0.clone().requires_grad_(true);
          const auto y = fused ? affine_noise_fused(x, gamma, beta, factor, zero, one)
                               : affine_noise_op_chain(x, gamma, beta, factor);
          y.backward(g);
          auto close = [](const torch::Tensor& a, const torch::Tensor& b) {
            return (a - b).abs().max().item<double>() <= 1e-12 * (1 + b.abs().max().item<double>());
          };
          EXPECT_TRUE(close(y, y_ref));
          EXPECT_TRUE(close(x.grad(), dx_ref));
          EXPECT_TRUE(close(gamma.grad(), dgamma_ref));
          EXPECT_TRUE(close(beta.grad(), dbeta_ref));
          // dL/dx in dy's layout: a channels_last net gets no transposing copies.
          if (channels_last && fused)
            EXPECT_TRUE(x.grad().is_contiguous(at::MemoryFormat::ChannelsLast));
          // Nothing accumulated into the constant statistics or the factor.
          EXPECT_TRUE(torch::equal(zero, torch::zeros({c}, dbl)));
          EXPECT_TRUE(torch::equal(one, torch::ones({c}, dbl)));
        }
      }
}

// The module, fused or not, draws the same noise from the same seed and so computes the same
// y and gradients: a run with norm.fused false is the same experiment. Catches a fused module
// that draws its noise in another shape or order, or applies it per channel when it should be
// per sample (and the reverse).
TEST(AffineNoise, FusedModuleMatchesTheOpChainModuleInTraining) {
  for (bool per_batch : {false, true}) {
    SCOPED_TRACE(per_batch ? "per batch" : "per sample");
    AffineNoise fused(4, per_batch, AffineInit::Unit, 1.0, /*fused=*/true);
    AffineNoise chain(4, per_batch, AffineInit::Unit, 1.0, /*fused=*/false);
    EXPECT_TRUE(fused->fused());
    EXPECT_FALSE(chain->fused());
    for (auto* m : {fused.get(), chain.get()}) {
      m->to(torch::kDouble);
      m->set_sigma(0.4);
      torch::NoGradGuard ng;
      m->weight.copy_(torch::tensor({1.0, -2.0, 0.5, 3.0}));
      m->bias.copy_(torch::tensor({0.0, 1.0, -1.0, 2.0}));
    }
    const auto x = torch::randn({6, 4, 3, 3}, torch::kDouble);
    const auto g = torch::randn_like(x);
    torch::manual_seed(9);
    const auto y_fused = fused->forward(x);
    torch::manual_seed(9);
    const auto y_chain = chain->forward(x);
    EXPECT_TRUE(torch::allclose(y_fused, y_chain, 1e-12, 1e-12));
    EXPECT_FALSE(torch::allclose(y_fused, x * fused->weight.view({1, 4, 1, 1}) +
                                              fused->bias.view({1, 4, 1, 1})));  // noise is on
    y_fused.backward(g);
    y_chain.backward(g);
    EXPECT_TRUE(torch::allclose(fused->weight.grad(), chain->weight.grad(), 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(fused->bias.grad(), chain->bias.grad(), 1e-12, 1e-12));
    // Eval: the affine alone, the same for both.
    fused->eval();
    chain->eval();
    EXPECT_TRUE(torch::allclose(fused->forward(x), chain->forward(x), 1e-12, 1e-12));
  }
}

// What a net keeps for backward does not grow with the fused layer: per-sample noise makes it
// keep x*(1 + n) instead of x, and x itself is then kept by nothing (the product's backward
// needs only 1 + n). conv -> affine -> ReLU -> conv on CPU, bytes in use after the forward.
// Catches a fused layer that keeps both x and its scaled copy (one more activation per layer).
TEST(AffineNoise, FusedLayerKeepsNoMoreThanTheOpChainInANet) {
  std::vector<double> held;
  for (bool fused : {true, false}) {
    torch::manual_seed(0);
    AffineNoise affine(16, false, AffineInit::Unit, 1.0, fused);
    affine->set_sigma(0.1);
    torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1)),
                              affine, torch::nn::ReLU(),
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 8, 3).padding(1)));
    const auto x = torch::randn({8, 8, 32, 32});
    net->forward(x).sum().backward();  // warm the allocator's caches
    const auto before = mallinfo2();
    auto loss = net->forward(x).sum();
    const auto after = mallinfo2();
    held.push_back(static_cast<double>((after.uordblks + after.hblkhd) -
                                       (before.uordblks + before.hblkhd)));
    loss.backward();
  }
  const double activation = 8.0 * 16 * 32 * 32 * sizeof(float);  // one conv output
  EXPECT_GT(held[1], 1.5 * activation);  // the op chain: conv output and ReLU output (at least)
  // Measured here: 2.07 activations fused, 2.01 the op chain; keeping x too would be 3.07.
  EXPECT_LT(held[0], held[1] + 0.25 * activation);
}

// On CUDA the fused layer runs BatchNorm's native kernels: with float32 parameters on bf16
// channels_last inputs (bf16 autocast's mixed path, the layout training uses) and in float32.
// Against the op chain in float32 on the same device and noise: float32 to rounding, bf16
// within bf16's precision. Catches a dtype or layout the kernels reject or get wrong, and
// dL/dx leaving channels_last.
TEST(AffineNoise, FusedOnCudaMatchesTheOpChainInFp32AndBf16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(12);
  const auto x32 = torch::randn({8, 16, 6, 6}, cuda).contiguous(at::MemoryFormat::ChannelsLast);
  const auto g32 = torch::randn_like(x32);
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    SCOPED_TRACE(dtype == torch::kFloat ? "fp32" : "bf16");
    std::vector<torch::Tensor> y, dw, db, dx;
    std::vector<bool> dx_layouts;
    for (bool fused : {true, false}) {
      AffineNoise a(16, false, AffineInit::Unit, 1.0, fused);
      a->set_sigma(0.3);
      a->to(torch::kCUDA);
      {
        torch::NoGradGuard ng;
        a->weight.copy_(torch::linspace(-2, 2, 16, cuda));
        a->bias.copy_(torch::linspace(1, -1, 16, cuda));
      }
      // The op chain is the float32 reference; the fused layer gets the dtype under test.
      auto x = (fused ? x32.to(dtype) : x32).detach().requires_grad_(true);
      torch::manual_seed(13);
      auto out = a->forward(x);
      out.backward(fused ? g32.to(dtype) : g32);
      y.push_back(out.detach().to(torch::kFloat));
      dx.push_back(x.grad().to(torch::kFloat));
      dx_layouts.push_back(x.grad().is_contiguous(at::MemoryFormat::ChannelsLast));
      dw.push_back(a->weight.grad());
      db.push_back(a->bias.grad());
    }
    const double tol = dtype == torch::kFloat ? 1e-5 : 3e-2;
    auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
      return ((a - b).abs().max() / b.abs().max()).item<double>();
    };
    EXPECT_LT(rel(y[0], y[1]), tol);
    EXPECT_LT(rel(dx[0], dx[1]), tol);
    EXPECT_LT(rel(dw[0], dw[1]), tol);
    EXPECT_LT(rel(db[0], db[1]), tol);
    EXPECT_EQ(dw[0].scalar_type(), torch::kFloat);  // parameters' gradients stay float32
    // BatchNorm's own eval-mode backward on CUDA writes dL/dx contiguous (NCHW) whatever dy's
    // layout; the function computes dL/dx itself so that channels_last nets keep theirs.
    EXPECT_TRUE(dx_layouts[0]);
  }
}

TEST(ChannelScale, StartsAtItsInitAndGetsAGradientThere) {
  ChannelScale s(2, 0.0);
  auto x = torch::tensor({{1.0, 2.0}, {3.0, -4.0}}).view({2, 2, 1, 1});
  auto y = s->forward(x);
  EXPECT_EQ(y.abs().max().item<double>(), 0.0);
  (y * x).sum().backward();  // d/ds of sum(s * x * x) = sum over the batch of x^2
  EXPECT_TRUE(torch::allclose(s->weight.grad(), torch::tensor({10.0, 20.0})));
}

// The fused branch scale (an affine without bias on BatchNorm's kernels) against the broadcast
// multiply under autograd, float64, in both layouts: y, dL/dx and dL/ds. Catches the fused
// path taking the wrong reduction (dL/dbeta's sum(dy) for dL/ds), a wrong dL/dx scale, or a
// layout the function drops.
TEST(ChannelScale, FusedEqualsTheBroadcastMultiplyAndItsGradients) {
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  torch::manual_seed(21);
  for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
    SCOPED_TRACE(format == at::MemoryFormat::Contiguous ? "contiguous" : "channels_last");
    const auto x0 = torch::randn({3, 5, 4, 2}, f64).contiguous(format);
    const auto g = torch::randn({3, 5, 4, 2}, f64).contiguous(format);
    const auto s0 = torch::randn({5}, f64);
    std::vector<torch::Tensor> y, dx, ds;
    for (bool fused : {true, false}) {
      ChannelScale s(5, 0.0, fused);
      s->to(torch::kDouble);
      {
        torch::NoGradGuard ng;
        s->weight.copy_(s0);
      }
      auto x = x0.clone().requires_grad_(true);
      auto out = s->forward(x);
      out.backward(g);
      y.push_back(out.detach());
      dx.push_back(x.grad());
      ds.push_back(s->weight.grad());
    }
    const auto s4 = s0.view({1, 5, 1, 1});
    EXPECT_TRUE(torch::allclose(y[0], x0 * s4, 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(y[0], y[1], 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(dx[0], g * s4, 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(ds[0], (g * x0).sum({0, 2, 3}), 1e-12, 1e-12));
    EXPECT_TRUE(torch::allclose(ds[0], ds[1], 1e-12, 1e-12));
    EXPECT_TRUE(dx[0].is_contiguous(format));
  }
}

// The vectorized CUDA kernel behind the fused layers' per-channel and per-(sample, channel)
// multiplies, against the product in float (double for double) rounded once, bit for bit:
// every dtype, both layouts, channel and position counts that do and do not fill a 16-byte
// pack, s per channel and per sample, and an input 2 bytes off 16-byte alignment. Catches a
// pack that mixes samples or channels, a wrong row of s, a misaligned vector load.
TEST(ScaleChannels, CudaKernelEqualsTheProductRoundedOnce) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs CUDA";
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  torch::manual_seed(22);
  for (auto dtype : {torch::kDouble, torch::kFloat, torch::kHalf, torch::kBFloat16})
    for (auto format : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast})
      for (std::vector<int64_t> shape : {std::vector<int64_t>{4, 16, 8, 8}, {3, 5, 3, 5},
                                         {2, 24, 3, 3}, {5, 8, 1, 1}})
        for (bool per_sample : {true, false})
          for (bool misaligned : {false, true}) {
            SCOPED_TRACE(::testing::Message()
                         << c10::toString(dtype) << " " << c10::IntArrayRef(shape)
                         << " channels_last "
                         << (format == at::MemoryFormat::ChannelsLast) << " per_sample "
                         << per_sample << " misaligned " << misaligned);
            const auto acc = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
            auto x = torch::randn(shape, cuda.dtype(dtype)).contiguous(format);
            if (misaligned) {  // the same values one element past an aligned start
              auto flat = torch::empty({x.numel() + 1}, cuda.dtype(dtype));
              auto moved = flat.narrow(0, 1, x.numel());
              if (format == at::MemoryFormat::ChannelsLast)
                moved = moved.view({shape[0], shape[2], shape[3], shape[1]}).permute({0, 3, 1, 2});
              else
                moved = moved.view(shape);
              moved.copy_(x);
              x = moved;
            }
            const auto s = per_sample ? torch::randn({shape[0], shape[1]}, cuda)
                                      : torch::randn({shape[1]}, cuda);
            const auto s4 = per_sample ? s.view({shape[0], shape[1], 1, 1})
                                       : s.view({1, shape[1], 1, 1});
            const auto want = (x.to(acc) * s4.to(acc)).to(dtype);
            const auto got = scale_channels(x, s);
            EXPECT_TRUE(torch::equal(got, want));
            EXPECT_TRUE(got.is_contiguous(format));
          }
}

TEST(AssignNoise, LinearScheduleCountsLayersInForwardOrder) {
  torch::nn::Sequential seq;
  for (int i = 0; i < 4; ++i) {
    seq->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 2, 1)));
    seq->push_back(AffineNoise(2));
  }
  const int64_t L = assign_noise(*seq, [](int64_t l, int64_t L, double s) { return s * l / L; }, 1.0);
  EXPECT_EQ(L, 4);
  int l = 0;
  for (const auto& m : seq->modules(false))
    if (auto* a = dynamic_cast<AffineNoiseImpl*>(m.get())) EXPECT_DOUBLE_EQ(a->sigma(), ++l / 4.0);
}

// A monitored run registers each watched layer under a "watched" wrapper; optimizer state
// and checkpoints key parameters by the canonical name, so a run resumed with monitoring
// switched on or off must see the same names. Only whole "watched" segments go.
TEST(ClassifyParameters, CanonicalNamesDropOnlyTheWatchedSegments) {
  EXPECT_EQ(canonical_name("features.3.watched.weight"), "features.3.weight");
  EXPECT_EQ(canonical_name("watched.weight"), "weight");
  EXPECT_EQ(canonical_name("a.watched.watched.b"), "a.b");
  EXPECT_EQ(canonical_name("unwatched.weight"), "unwatched.weight");
  EXPECT_EQ(canonical_name("block0.norm1.bias"), "block0.norm1.bias");
}

TEST(ClassifyParameters, RolesFollowModules) {
  torch::nn::Sequential seq(ConstrainedConv2d(torch::nn::Conv2dOptions(3, 4, 3).bias(false),
                                              ConstraintSpec{}),
                            AffineNoise(4), torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 1)),
                            torch::nn::BatchNorm2d(4), torch::nn::Linear(4, 2));
  auto params = classify_parameters(*seq);
  std::map<std::string, ParamRole> roles;
  for (const auto& p : params) roles[p.name] = p.role;
  EXPECT_EQ(roles.at("0.weight"), ParamRole::Constrained);
  EXPECT_EQ(roles.at("1.weight"), ParamRole::NormAffine);
  EXPECT_EQ(roles.at("1.bias"), ParamRole::NormAffine);
  EXPECT_EQ(roles.at("2.weight"), ParamRole::Weight);
  EXPECT_EQ(roles.at("2.bias"), ParamRole::Bias);
  EXPECT_EQ(roles.at("3.weight"), ParamRole::NormAffine);
  EXPECT_EQ(roles.at("4.weight"), ParamRole::Weight);
  EXPECT_EQ(roles.at("4.bias"), ParamRole::Bias);
  EXPECT_EQ(params.size(), 9u);
}

}  // namespace
}  // namespace normexp::nn
