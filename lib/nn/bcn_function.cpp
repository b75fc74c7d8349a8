#include "nn/bcn_function.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#ifdef NORMEXP_WITH_CUDA
#include "nn/bcn_cuda.h"
#endif

// Layout of the work (see bcn_function.h for the math). The tensor is viewed as N samples of
// P vectors of D features: Tokens (N, P, D) with contiguous vectors, Channels (N, D, P) with
// the feature stride P (P = H*W). Vector v = n*P + p in both. Per-vector scalars live in
// double arrays (a few per vector, against D values per vector in the tensor).
//
// Passes over the tensor: forward = one reduction (||x||) + one elementwise pass (y); backward
// = one reduction (h.x per vector, and the affine's dL/dw, dL/db) + one elementwise pass
// (dL/dx). Between them a step over the magnitudes computes the magnitude LayerNorm and its
// backward, which need statistics over a whole group of vectors — that dependency is why a
// vector cannot be finished in the pass that reads it. Where groups do not span samples
// (all modes but batch statistics in training) each thread runs both passes on one sample
// at a time, so the second pass reads from cache (see reduce_then_finish).
//
// Channels maps are processed in blocks of kBlock positions of one sample: the inner loops
// run over contiguous positions (vectorizable), the outer over the strided features, with
// per-position accumulators (kBlock of them) that stay in cache. Blocks are long so that each
// feature's row is one long contiguous run the hardware prefetcher can stream: with 64
// positions (256 bytes a row, rows 12.5 KB apart on a 56 x 56 map, so every row on its own
// page) Intel's prefetchers gave up and the conv-map backward ran at +519% of BatchNorm2d's
// on the 2-core Xeon VM (one thread); 4096 positions (a ResNet-50 56 x 56 map whole): +42%
// (README, "Overhead").
//
// CUDA tensors (builds with NORMEXP_WITH_CUDA) take the same autograd function: forward and
// backward dispatch on x.device() to nn/bcn_cuda.cu, the same two passes per direction as
// kernels (a per-vector reduction, the group step as small kernels over the magnitudes, one
// elementwise pass that in the backward also reduces the affine's gradients). What differs,
// and why: bf16/half stay in their dtype (math in float; the affine's weight and its
// gradients in float, not rounded to bf16); gamma, beta and the running estimates are read on
// the device, not with .item(), so that a layer costs no host synchronization and can be
// captured in a CUDA graph; the group step keeps gamma * rho per group instead of gamma.

namespace normexp::nn {

namespace {

constexpr int64_t kBlock = 4096;  // Channels: positions per block (accumulators on the stack)
constexpr int kLanes = 16;        // independent accumulators: lets the compiler vectorize sums

template <typename T>
struct FastRange;  // a sum of squares in (lo, hi) lost nothing to overflow or underflow
template <>
struct FastRange<float> {
  static constexpr float lo = 0x1p-100f, hi = 0x1p100f;
};
template <>
struct FastRange<double> {
  static constexpr double lo = 0x1p-900, hi = 0x1p900;
};

struct Geo {
  int64_t N = 0, P = 0, D = 0;
  bool channels = false;
  int64_t R = 1;  // Tokens: consecutive features sharing one affine weight (affine_run)
  int64_t V() const { return N * P; }
  int64_t W() const { return D / R; }  // affine weights
  int64_t blocks() const { return (P + kBlock - 1) / kBlock; }
};

Geo geometry(const torch::Tensor& x, const BcnFunctionConfig& c) {
  Geo g;
  g.N = x.size(0);
  g.channels = c.layout == BcnLayout::Channels;
  g.D = g.channels ? x.size(1) : x.size(-1);
  g.P = x.numel() / (g.N * g.D);
  g.R = c.affine_run;
  return g;
}

// ||x|| as a * ||x/a||, a = max|x_k| (the op chain's formula), for the rare vectors whose plain
// sum of squares left the safe range.
template <typename T>
double norm_scaled(const T* x, int64_t D, int64_t stride) {
  double a = 0;
  for (int64_t k = 0; k < D; ++k) a = std::max(a, std::abs(static_cast<double>(x[k * stride])));
  if (a == 0) return 0;
  double ss = 0;
  for (int64_t k = 0; k < D; ++k) {
    const double t = static_cast<double>(x[k * stride]) / a;
    ss += t * t;
  }
  return a * std::sqrt(ss);
}

template <typename T>
double finish_norm(T ss, const T* x, int64_t D, int64_t stride) {
  if (ss > FastRange<T>::lo && ss < FastRange<T>::hi) return std::sqrt(static_cast<double>(ss));
  return norm_scaled(x, D, stride);
}

// Groups of vectors the magnitude statistics span: contiguous runs of `size` vectors.
struct Groups {
  int64_t count = 0, size = 1;
  bool constant = false;  // stats: batch in evaluation (running estimates)
  bool identity = false;  // stats: none (m~ = m)
};

Groups groups_for(const BcnFunctionConfig& c, const Geo& g) {
  Groups gr;
  switch (c.stats) {
    case BcnStats::None: gr.identity = true; break;
    case BcnStats::Literal: gr.count = g.V(); gr.size = 1; break;  // LayerNorm(1): one each
    case BcnStats::Tokens: gr.count = g.N; gr.size = g.P; break;
    case BcnStats::Batch:
      gr.count = 1;
      gr.size = g.V();
      gr.constant = !c.training;
      break;
  }
  return gr;
}

// Column indices into the per-vector table saved for backward.
enum Col { kM = 0, kS, kXm, kDs, kCols };

int64_t items_per_sample(const Geo& g) { return g.channels ? g.blocks() : g.P; }

// The kernels twice: portable, and for AVX2+FMA (8 floats per instruction instead of SSE2's
// 4) where the CPU has them — the build targets plain x86-64.
namespace portable {
#include "nn/bcn_kernels.inc"
}  // namespace portable
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NORMEXP_BCN_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "nn/bcn_kernels.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif

bool use_avx2() {
#ifdef NORMEXP_BCN_AVX2
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

// Each kernel: the AVX2 build where use_avx2(), else the portable one.
#ifdef NORMEXP_BCN_AVX2
#define NORMEXP_BCN_PICK(name) (use_avx2() ? &avx2::name : &portable::name)
#else
#define NORMEXP_BCN_PICK(name) (&portable::name)
#endif

template <typename T>
void magnitudes(const T* x, const Geo& g, int64_t i0, int64_t i1, double* m) {
  NORMEXP_BCN_PICK(magnitudes<T>)(x, g, i0, i1, m);
}
template <typename T, bool Affine>
void write_output(const T* x, const Geo& g, int64_t i0, int64_t i1, const T* A, const T* Z,
                  const T* XS, const T* w, const T* bb, T* y) {
  using Fn = void (*)(const T*, const Geo&, int64_t, int64_t, const T*, const T*, const T*,
                      const T*, const T*, T*);
  Fn fn = &portable::write_output<T, Affine>;
#ifdef NORMEXP_BCN_AVX2
  if (use_avx2()) fn = &avx2::write_output<T, Affine>;
#endif
  fn(x, g, i0, i1, A, Z, XS, w, bb, y);
}
template <typename T, bool Affine>
void backward_reduce(const T* gy, const T* x, const Geo& g, int64_t i0, int64_t i1, const T* w,
                     const T* A, const T* Z, const T* XS, const double* m, double* dot,
                     double* gsum, T* gwt, T* gbt) {
  using Fn = void (*)(const T*, const T*, const Geo&, int64_t, int64_t, const T*, const T*,
                      const T*, const T*, const double*, double*, double*, T*, T*);
  Fn fn = &portable::backward_reduce<T, Affine>;
#ifdef NORMEXP_BCN_AVX2
  if (use_avx2()) fn = &avx2::backward_reduce<T, Affine>;
#endif
  fn(gy, x, g, i0, i1, w, A, Z, XS, m, dot, gsum, gwt, gbt);
}
template <typename T, bool Affine>
void write_grad_input(const T* gy, const T* x, const Geo& g, int64_t i0, int64_t i1, const T* w,
                      const T* A2, const T* C2, const T* IM, const T* XS, T* dx) {
  using Fn = void (*)(const T*, const T*, const Geo&, int64_t, int64_t, const T*, const T*,
                      const T*, const T*, const T*, T*);
  Fn fn = &portable::write_grad_input<T, Affine>;
#ifdef NORMEXP_BCN_AVX2
  if (use_avx2()) fn = &avx2::write_grad_input<T, Affine>;
#endif
  fn(gy, x, g, i0, i1, w, A2, C2, IM, XS, dx);
}

// reduce(items), then between(vectors), then finish(items). When the magnitude statistics
// of different samples are independent (every mode but batch statistics in training) each
// thread takes whole samples, so the finishing pass re-reads the sample from its own cache
// (a 197 x 768 float sample is 0.6 MB) instead of from memory. Otherwise: three global phases.
template <class Reduce, class Between, class Finish>
void reduce_then_finish(const Geo& g, bool per_sample, const Reduce& reduce,
                        const Between& between, const Finish& finish) {
  const int64_t ips = items_per_sample(g);
  if (per_sample) {
    at::parallel_for(0, g.N, 1, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        reduce(n * ips, (n + 1) * ips);
        between(n * g.P, (n + 1) * g.P);
        finish(n * ips, (n + 1) * ips);
      }
    });
    return;
  }
  const int64_t grain = g.channels ? 1 : std::max<int64_t>(1, 16384 / g.D);
  at::parallel_for(0, g.N * ips, grain, [&](int64_t b, int64_t e) { reduce(b, e); });
  between(0, g.V());
  at::parallel_for(0, g.N * ips, grain, [&](int64_t b, int64_t e) { finish(b, e); });
}

bool per_sample_ok(const BcnFunctionConfig& c, const Geo& g) {
  const bool global_stats = c.stats == BcnStats::Batch && c.training;
  return !global_stats && g.N >= at::get_num_threads();
}

// A per-vector factor k / m as (k / (m xs)) * xs, xs a power of two: 1 for every vector but
// those so small (m below 2^-60) that k / m could overflow T — float's 1/m does for m below
// ~3e-39, double's for subnormal m — where xs = 2^(-e/2), m = 2^e. Both factors then fit T,
// x xs is exact, and (x xs) * (k / (m xs)) rounds as x * (k / m) would have.
struct SplitScale {
  double factor, xs;
};
SplitScale split_scale(double k, double m) {
  if (m >= 0x1p-60) return {k / m, 1.0};
  const int e = std::ilogb(m);
  const double xs = std::ldexp(1.0, -e / 2);
  return {k / (m * xs), xs};
}

// The output's per-vector coefficients, y = (A (x XS) + Z) w + b, from m and c s: A = c s / m
// split as above, Z = 0; a zero vector has A = 0, Z = c s / sqrt(d) (the uniform direction).
// Forward and backward both need them; the backward recomputes them from the saved m and s.
template <typename T>
void set_output_coefficients(int64_t v, double m, double cs, double uniform, T* A, T* Z, T* XS) {
  const SplitScale a = m > 0 ? split_scale(cs, m) : SplitScale{0.0, 1.0};
  A[v] = static_cast<T>(a.factor);
  XS[v] = static_cast<T>(a.xs);
  Z[v] = static_cast<T>(m > 0 ? 0.0 : cs * uniform);
}

// bound(m~) and its slope: tanh and sech^2 = 1 - tanh^2 (one tanh per vector), or clip and
// 1 on [-1, 1] inclusive (as torch::clamp's backward).
std::pair<double, double> bound_and_slope(double mt, BcnBound b) {
  if (b == BcnBound::Tanh) {
    const double t = std::tanh(mt);
    return {t, 1.0 - t * t};
  }
  return {std::min(1.0, std::max(-1.0, mt)), (mt >= -1.0 && mt <= 1.0) ? 1.0 : 0.0};
}

// ---------------------------------------------------------------------------------------
// The autograd function

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

BcnFunctionConfig config_from(AutogradContext* ctx) {
  BcnFunctionConfig c;
  c.layout = static_cast<BcnLayout>(ctx->saved_data["layout"].toInt());
  c.stats = static_cast<BcnStats>(ctx->saved_data["stats"].toInt());
  c.bound = static_cast<BcnBound>(ctx->saved_data["bound"].toInt());
  c.alpha = ctx->saved_data["alpha"].toDouble();
  c.eps = ctx->saved_data["eps"].toDouble();
  c.scale = ctx->saved_data["scale"].toDouble();
  c.training = ctx->saved_data["training"].toBool();
  c.affine_run = ctx->saved_data["affine_run"].toInt();
  return c;
}

void save_config(AutogradContext* ctx, const BcnFunctionConfig& c) {
  ctx->saved_data["layout"] = static_cast<int64_t>(c.layout);
  ctx->saved_data["stats"] = static_cast<int64_t>(c.stats);
  ctx->saved_data["bound"] = static_cast<int64_t>(c.bound);
  ctx->saved_data["alpha"] = c.alpha;
  ctx->saved_data["eps"] = c.eps;
  ctx->saved_data["scale"] = c.scale;
  ctx->saved_data["training"] = c.training;
  ctx->saved_data["affine_run"] = c.affine_run;
}

#ifdef NORMEXP_WITH_CUDA
// groups_for's groups as the CUDA modes (a sample of one vector is a group of one).
cuda_impl::BcnCudaConfig cuda_config(const BcnFunctionConfig& c, const Geo& g) {
  using cuda_impl::BcnCudaMode;
  cuda_impl::BcnCudaConfig cc;
  cc.N = g.N;
  cc.P = g.P;
  cc.D = g.D;
  cc.channels = g.channels;
  switch (c.stats) {
    case BcnStats::None: cc.mode = BcnCudaMode::Identity; break;
    case BcnStats::Literal: cc.mode = BcnCudaMode::PerVector; break;
    case BcnStats::Tokens: cc.mode = g.P == 1 ? BcnCudaMode::PerVector : BcnCudaMode::Sample; break;
    case BcnStats::Batch: cc.mode = c.training ? BcnCudaMode::Batch : BcnCudaMode::Running; break;
  }
  cc.tanh = c.bound == BcnBound::Tanh;
  cc.alpha = c.alpha;
  cc.eps = c.eps;
  cc.scale = c.scale;
  return cc;
}
#endif

class BcnFunction : public torch::autograd::Function<BcnFunction> {
 public:
  // Outputs: y, s per vector (N, P), and the batch's magnitude (mean, var) as a double (2).
  // Absent weight/bias (no affine) and mag_weight/mag_bias (stats: none) come as empty tensors.
  // running_mean, running_var: stats batch in evaluation on CPU; on CUDA `running` holds them
  // as a (2) double tensor on the device instead (read there: no host synchronization).
  static variable_list forward(AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               torch::Tensor bias, torch::Tensor mag_weight,
                               torch::Tensor mag_bias, double running_mean, double running_var,
                               torch::Tensor running, BcnFunctionConfig c) {
    const Geo g = geometry(x, c);
    save_config(ctx, c);
#ifdef NORMEXP_WITH_CUDA
    if (x.is_cuda()) {
      const bool with_affine = weight.numel() > 0;
      auto r = cuda_impl::bcn_cuda_forward(x, with_affine ? weight : torch::Tensor(),
                                           with_affine ? bias : torch::Tensor(), mag_weight,
                                           mag_bias, running, cuda_config(c, g));
      ctx->save_for_backward({x, weight});
      ctx->saved_data["table"] = r.table;
      ctx->saved_data["rho"] = r.grho;  // gamma * rho per group
      ctx->mark_non_differentiable({r.s, r.batch});
      return {r.y, r.s, r.batch};
    }
#endif
    (void)running;
    const Groups gr = groups_for(c, g);
    const int64_t V = g.V();
    const bool affine = weight.numel() > 0;
    const double gamma = gr.identity ? 1.0 : mag_weight.item<double>();
    const double beta = gr.identity ? 0.0 : mag_bias.item<double>();
    const double uniform = 1.0 / std::sqrt(static_cast<double>(g.D));
    const auto dopt = torch::TensorOptions().dtype(torch::kDouble);

    // Per vector: m, s, the normalized magnitude (m - mu) rho, ds/dm~; per group: rho.
    auto table = torch::empty({V, kCols}, dopt);
    auto rho_t = torch::empty({std::max<int64_t>(gr.count, 1)}, dopt);
    auto batch = torch::zeros({2}, dopt);
    double* tab = table.data_ptr<double>();
    double* rho = rho_t.data_ptr<double>();
    if (gr.constant) rho[0] = 1.0 / std::sqrt(running_var + c.eps);
    std::vector<double> m(V);
    auto y = torch::empty_like(x, at::MemoryFormat::Contiguous);

    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bcn_forward", [&] {
      using T = scalar_t;
      std::vector<T> A(V), Z(V), XS(V);
      const T* xp = x.data_ptr<T>();
      const T* wp = affine ? weight.data_ptr<T>() : nullptr;
      const T* bp = affine ? bias.data_ptr<T>() : nullptr;
      T* yp = y.data_ptr<T>();
      auto set_scale = [&](int64_t v, double xm, double mt) {
        double* row = tab + v * kCols;
        row[kM] = m[v];
        row[kXm] = xm;
        const auto [bv, slope] = bound_and_slope(mt, c.bound);
        row[kS] = (1.0 - c.alpha) + c.alpha * (bv + 1.0) * 0.5;
        row[kDs] = 0.5 * c.alpha * slope;
        set_output_coefficients(v, m[v], c.scale * row[kS], uniform, A.data(), Z.data(),
                                XS.data());
      };
      // m~ = gamma (m - mu) rho + beta over the groups in [v0, v1) (group-aligned).
      auto between = [&](int64_t v0, int64_t v1) {
        if (gr.identity) {
          for (int64_t v = v0; v < v1; ++v) set_scale(v, 0.0, m[v]);
        } else if (gr.constant) {
          const double r = rho[0];
          for (int64_t v = v0; v < v1; ++v) {
            const double xm = (m[v] - running_mean) * r;
            set_scale(v, xm, gamma * xm + beta);
          }
        } else {
          for (int64_t gi = v0 / gr.size; gi < v1 / gr.size; ++gi) {
            const int64_t a = gi * gr.size, b = a + gr.size;
            double mu = 0, var = 0;
            for (int64_t v = a; v < b; ++v) mu += m[v];
            mu /= static_cast<double>(gr.size);
            for (int64_t v = a; v < b; ++v) var += (m[v] - mu) * (m[v] - mu);
            var /= static_cast<double>(gr.size);
            rho[gi] = 1.0 / std::sqrt(var + c.eps);
            for (int64_t v = a; v < b; ++v) {
              const double xm = (m[v] - mu) * rho[gi];
              set_scale(v, xm, gamma * xm + beta);
            }
            if (c.stats == BcnStats::Batch) {
              batch.data_ptr<double>()[0] = mu;
              batch.data_ptr<double>()[1] = var;
            }
          }
        }
      };
      auto reduce = [&](int64_t i0, int64_t i1) { magnitudes(xp, g, i0, i1, m.data()); };
      auto finish = [&](int64_t i0, int64_t i1) {
        if (affine)
          write_output<T, true>(xp, g, i0, i1, A.data(), Z.data(), XS.data(), wp, bp, yp);
        else
          write_output<T, false>(xp, g, i0, i1, A.data(), Z.data(), XS.data(), nullptr, nullptr,
                                 yp);
      };
      reduce_then_finish(g, per_sample_ok(c, g), reduce, between, finish);
    });

    auto s_out = table.select(1, kS).to(x.scalar_type(), false, /*copy=*/true).reshape({g.N, g.P});
    ctx->save_for_backward({x, weight});
    ctx->saved_data["table"] = table;
    ctx->saved_data["rho"] = rho_t;
    ctx->saved_data["gamma"] = gamma;
    ctx->mark_non_differentiable({s_out, batch});
    return {y, s_out, batch};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "BCN's fused backward is not differentiable (create_graph / double backward); "
                "build the layer with BcnOptions::fused = false for higher derivatives");
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const BcnFunctionConfig c = config_from(ctx);
    const auto table = ctx->saved_data["table"].toTensor();
    const auto rho_t = ctx->saved_data["rho"].toTensor();
#ifdef NORMEXP_WITH_CUDA
    if (x.is_cuda()) {
      const Geo g = geometry(x, c);
      auto r = cuda_impl::bcn_cuda_backward(grads[0].contiguous(), x,
                                            weight.numel() > 0 ? weight : torch::Tensor(), table,
                                            rho_t, cuda_config(c, g));
      torch::Tensor dmw, dmb;
      if (r.dmag.defined()) {  // (1) each, as the double mag_weight/mag_bias they belong to
        dmw = r.dmag.narrow(0, 0, 1);
        dmb = r.dmag.narrow(0, 1, 1);
      }
      return {r.dx, r.dw, r.db, dmw, dmb, torch::Tensor(), torch::Tensor(), torch::Tensor(),
              torch::Tensor()};
    }
#endif
    const double gamma = ctx->saved_data["gamma"].toDouble();
    const Geo g = geometry(x, c);
    const Groups gr = groups_for(c, g);
    const int64_t V = g.V();
    const bool affine = weight.numel() > 0;
    const double* tab = table.data_ptr<double>();
    const double* rho = rho_t.data_ptr<double>();
    const double uniform = 1.0 / std::sqrt(static_cast<double>(g.D));

    const torch::Tensor gy = grads[0].contiguous();
    torch::Tensor dx = torch::empty_like(x, at::MemoryFormat::Contiguous);
    torch::Tensor dw, db;
    std::vector<double> q(V);
    const int64_t threads = at::get_num_threads();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bcn_backward", [&] {
      using T = scalar_t;
      std::vector<T> A(V), Z(V), XS(V), A2(V), C2(V), IM(V);
      std::vector<double> m(V), dot(V), gsum(V, 0.0), hu(V);
      for (int64_t v = 0; v < V; ++v) {
        m[v] = tab[v * kCols + kM];
        set_output_coefficients(v, m[v], c.scale * tab[v * kCols + kS], uniform, A.data(),
                                Z.data(), XS.data());
      }
      const int64_t gsize = affine ? threads * g.W() : 0;  // per-thread dL/dw, dL/db
      std::vector<T> gw(gsize, T(0)), gb(gsize, T(0));
      const T* gp = gy.data_ptr<T>();
      const T* xp = x.data_ptr<T>();
      const T* wp = affine ? weight.data_ptr<T>() : nullptr;
      T* dxp = dx.data_ptr<T>();

      auto reduce = [&](int64_t i0, int64_t i1) {
        const int64_t t = at::get_thread_num();
        if (affine)
          backward_reduce<T, true>(gp, xp, g, i0, i1, wp, A.data(), Z.data(), XS.data(),
                                   m.data(), dot.data(), gsum.data(), gw.data() + t * g.W(),
                                   gb.data() + t * g.W());
        else
          backward_reduce<T, false>(gp, xp, g, i0, i1, wp, A.data(), Z.data(), XS.data(),
                                    m.data(), dot.data(), gsum.data(), nullptr, nullptr);
      };
      // hu = h.u (u the direction), q = dL/dm~ = c hu ds/dm~, p = dL/dm through the magnitude
      // LayerNorm (its standard backward per group), then dL/dx = A2 h + C2 x / m with
      // A2 = c s / m, C2 = p - A2 hu; zero vectors get 0.
      auto between = [&](int64_t v0, int64_t v1) {
        for (int64_t v = v0; v < v1; ++v) {
          hu[v] = m[v] > 0 ? dot[v] / m[v] : uniform * gsum[v];
          q[v] = c.scale * hu[v] * tab[v * kCols + kDs];
        }
        auto finish_vector = [&](int64_t v, double p) {
          if (m[v] > 0) {
            const double a2 = c.scale * tab[v * kCols + kS] / m[v];
            A2[v] = static_cast<T>(a2);
            C2[v] = static_cast<T>(p - a2 * hu[v]);
            IM[v] = static_cast<T>(split_scale(1.0, m[v]).factor);  // XS as the forward's
          } else {
            A2[v] = C2[v] = IM[v] = T(0);
          }
        };
        if (gr.identity) {
          for (int64_t v = v0; v < v1; ++v) finish_vector(v, q[v]);
        } else if (gr.constant) {
          for (int64_t v = v0; v < v1; ++v) finish_vector(v, gamma * rho[0] * q[v]);
        } else {
          for (int64_t gi = v0 / gr.size; gi < v1 / gr.size; ++gi) {
            const int64_t a = gi * gr.size, b = a + gr.size;
            double mq = 0, mqx = 0;
            for (int64_t v = a; v < b; ++v) {
              mq += q[v];
              mqx += q[v] * tab[v * kCols + kXm];
            }
            mq /= static_cast<double>(gr.size);
            mqx /= static_cast<double>(gr.size);
            for (int64_t v = a; v < b; ++v)
              finish_vector(v, gamma * rho[gi] * (q[v] - mq - tab[v * kCols + kXm] * mqx));
          }
        }
      };
      auto finish = [&](int64_t i0, int64_t i1) {
        if (affine)
          write_grad_input<T, true>(gp, xp, g, i0, i1, wp, A2.data(), C2.data(), IM.data(),
                                    XS.data(), dxp);
        else
          write_grad_input<T, false>(gp, xp, g, i0, i1, wp, A2.data(), C2.data(), IM.data(),
                                     XS.data(), dxp);
      };
      reduce_then_finish(g, per_sample_ok(c, g), reduce, between, finish);
      if (affine) {
        dw = torch::zeros({g.W()}, x.options());
        db = torch::zeros({g.W()}, x.options());
        T* dwp = dw.data_ptr<T>();
        T* dbp = db.data_ptr<T>();
        for (int64_t t = 0; t < threads; ++t)
          for (int64_t k = 0; k < g.W(); ++k) {
            dwp[k] += gw[t * g.W() + k];
            dbp[k] += gb[t * g.W() + k];
          }
      }
    });
    torch::Tensor dmw, dmb;
    if (!gr.identity) {
      double dgamma = 0, dbeta = 0;
      for (int64_t v = 0; v < V; ++v) {
        dbeta += q[v];
        dgamma += q[v] * tab[v * kCols + kXm];
      }
      const auto mopt = torch::TensorOptions().dtype(torch::kDouble);
      dmw = torch::full({1}, dgamma, mopt);
      dmb = torch::full({1}, dbeta, mopt);
    }
    return {dx, dw, db, dmw, dmb, torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

bool bcn_fused_supports(const c10::Device& device) {
#ifdef NORMEXP_WITH_CUDA
  if (device.is_cuda()) return true;
#endif
  return device.is_cpu();
}

bool bcn_fused_cpu_parallel() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

BcnFunctionResult bcn_fused(const torch::Tensor& x, const torch::Tensor& weight,
                            const torch::Tensor& bias, const torch::Tensor& mag_weight,
                            const torch::Tensor& mag_bias, const torch::Tensor& running_mean,
                            const torch::Tensor& running_var, const BcnFunctionConfig& config) {
  const bool cuda = x.device().is_cuda();
  TORCH_CHECK(bcn_fused_supports(x.device()), "bcn_fused runs on CPU tensors",
              bcn_fused_supports(c10::Device(c10::kCUDA)) ? " and CUDA tensors" : "",
              ", not on ", x.device());
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == torch::kFloat || dtype == torch::kDouble ||
                  (cuda && (dtype == torch::kHalf || dtype == torch::kBFloat16)),
              "bcn_fused takes float or double", cuda ? ", half or bfloat16" : "", ", got ",
              dtype);
  TORCH_CHECK(x.dim() >= 2 && x.numel() > 0, "bcn_fused: empty or 1-d input ", x.sizes());
  TORCH_CHECK(weight.defined() == bias.defined(), "bcn_fused: weight and bias go together");
  const int64_t d = config.layout == BcnLayout::Channels ? x.size(1) : x.size(-1);
  const int64_t run = config.affine_run;
  TORCH_CHECK(run == 1 || (config.layout == BcnLayout::Tokens && run > 0 && d % run == 0),
              "bcn_fused: affine_run ", run, " must divide the Tokens layout's ", d, " features");
  TORCH_CHECK(!weight.defined() || (weight.numel() == d / run && bias.numel() == d / run),
              "bcn_fused: ", d, " features with affine_run ", run, " need ", d / run,
              " affine weights, got ", weight.numel());
  const auto xc = x.contiguous();
  // The mag scalars' gradients come back in double; cast them to the parameters' dtype and
  // shape through ordinary ops so that autograd does the conversion.
  // Absent tensors travel as empty ones (a custom function's inputs must be defined).
  const auto none = torch::empty({0}, xc.options());
  // The affine's weight and bias in x's dtype on CPU; on CUDA in the accumulation type, so
  // that bf16/half inputs keep a float affine and get float gradients for it.
  const auto wdtype = cuda && dtype != torch::kDouble ? torch::kFloat : dtype;
  auto to_x = [&](const torch::Tensor& t) {
    return t.defined() ? t.to(wdtype).contiguous() : none;
  };
  const bool identity = config.stats == BcnStats::None;
  auto to_d = [&](const torch::Tensor& t) {
    return identity || !t.defined() ? none : t.to(torch::kDouble);
  };
  const bool constant = config.stats == BcnStats::Batch && !config.training;
  TORCH_CHECK(!constant || (running_mean.defined() && running_var.defined()),
              "bcn_fused: stats batch in evaluation needs the running estimates");
  // On CUDA the running estimates stay on the device (a .item() is a host synchronization).
  const bool host_running = constant && !cuda;
  const auto running = constant && cuda ? torch::cat({running_mean.reshape({1}).to(torch::kDouble),
                                                      running_var.reshape({1}).to(torch::kDouble)})
                                        : none;
  // The CUDA kernels take one weight per feature: a run-shared affine (whole-map vectors)
  // goes there as weights repeated along the run, through autograd (expand's backward sums
  // the runs' gradients back). That keeps one sample's worth of weights for the backward; the
  // CPU loops index the runs instead.
  auto c = config;
  torch::Tensor w = weight, b = bias;
  if (cuda && run > 1 && weight.defined()) {
    auto repeat = [&](const torch::Tensor& t) {
      return t.reshape({-1, 1}).expand({-1, run}).reshape({-1});
    };
    w = repeat(weight);
    b = repeat(bias);
    c.affine_run = 1;
  }
  auto out = BcnFunction::apply(xc, to_x(w), to_x(b), to_d(mag_weight), to_d(mag_bias),
                                host_running ? running_mean.item<double>() : 0.0,
                                host_running ? running_var.item<double>() : 1.0, running, c);
  BcnFunctionResult r;
  r.y = out[0];
  r.scale = out[1];
  if (config.stats == BcnStats::Batch && config.training) {
    r.batch_mean = out[2][0];
    r.batch_var = out[2][1];
  }
  return r;
}

}  // namespace normexp::nn
