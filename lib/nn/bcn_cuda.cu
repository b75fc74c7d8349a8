// BCN's fused autograd function on CUDA (nn/bcn_function.h has the math, bcn_cuda.h the
// interface): the same function as the CPU loops of bcn_function.cpp, as kernels.
//
// Per direction, two passes over the tensor with a small step between them over the
// per-vector magnitudes (Markou et al. §3.2 forward, §4.1 closed-form backward):
//   forward:  norms (read x)            -> scales (per group)  -> output (read x, write y)
//   backward: dot, sum (read dy, x)     -> coefficients        -> dL/dx and the affine's
//                                                                 dL/dw, dL/db (read dy, x,
//                                                                 write dx)
// The step between is why a vector cannot be finished in the pass that reads it: the
// magnitude LayerNorm needs statistics over a whole group (a sample's vectors, or the batch).
//
// Everything stays on the device: gamma, beta and the running estimates are read by the
// kernels (a .item() would be a host synchronization per layer, and would break CUDA-graph
// capture), scratch comes from the caching allocator, every launch is on the current stream,
// and no reduction uses atomics, so results are bitwise reproducible run to run (the
// project's deterministic mode) and the function can be captured.
//
// Numbers: x, y, dy, dx keep their dtype (bf16/half are never copied to float); sums and
// per-vector tables are in the accumulation type (double for double, else float); the few
// operations per vector of the step between (tanh, the group statistics) run in double, as on
// the CPU, where they cost nothing next to the D values of each vector.
#include "nn/bcn_cuda.h"
#include "nn/bcn_cuda_launch.h"
#include "nn/cuda_pack.cuh"

#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace normexp::nn::cuda_impl {

namespace {

// kWarp, kThreads, kRows, ... and the splits of the work: nn/bcn_cuda_launch.h.
constexpr int64_t kMaxGrid = int64_t{1} << 24;  // beyond: grid-stride loops

// Rows of the per-vector table (struct of arrays: row r holds one quantity for every vector,
// so a warp's loads of consecutive vectors are coalesced).
// kXs: x's power-of-two prescale, 1 but for tiny vectors (split_scale).
enum TableRow : int { kM = 0, kS, kXm, kDs, kA, kZ, kXs, kCols };
// Rows of the backward's scratch: the per-vector sums, then dL/dx's coefficients.
enum SumRow : int { kDot = 0, kGsum };
enum CoefRow : int { kA2 = 0, kC2, kInvM };

unsigned grid_of(int64_t blocks) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, kMaxGrid)));
}

// ---------------------------------------------------------------------------------------
// Device helpers

// 16-byte loads and stores of VEC values (VEC = 1: plain ones): nn/cuda_pack.cuh.

__device__ __forceinline__ float acc_sqrt(float v) {
  return sqrtf(v);
}
__device__ __forceinline__ double acc_sqrt(double v) {
  return sqrt(v);
}
__device__ __forceinline__ float acc_abs(float v) {
  return fabsf(v);
}
__device__ __forceinline__ double acc_abs(double v) {
  return fabs(v);
}
// A sum of squares in this range lost nothing to overflow or underflow (bcn_function.cpp's
// FastRange); outside it, ||x|| = a ||x / a||.
__device__ __forceinline__ bool in_safe_range(float ss) {
  return ss > 0x1p-100f && ss < 0x1p100f;
}
__device__ __forceinline__ bool in_safe_range(double ss) {
  return ss > 0x1p-900 && ss < 0x1p900;
}

// Butterfly reductions: every lane ends with the same bits (each step adds a pair in both
// orders, and addition commutes), so lanes never disagree on a branch taken on the result.
template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <typename A>
__device__ __forceinline__ A warp_max(A v) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const A u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  return v;
}

// The sum over a 1-d block of kThreads, returned to every thread, in a fixed order (the same
// bits in every block that sums the same values). Every thread of the block must call it.
__device__ __forceinline__ double block_sum(double v, double* smem /* kWarps */) {
  v = warp_sum(v);
  __syncthreads();  // smem may still be read from the previous call
  if (threadIdx.x % kWarp == 0) smem[threadIdx.x / kWarp] = v;
  __syncthreads();
  double t = 0;
  for (int w = 0; w < kWarps; ++w) t += smem[w];
  return t;
}

// ||x|| of one strided vector by one thread, from its plain sum of squares when that is in
// the safe range, else rescaled by a = max|x_k| (rare: the loops below read x twice more).
template <typename T, typename Acc>
__device__ Acc finish_norm(Acc ss, const T* x, int64_t D, int64_t stride) {
  if (in_safe_range(ss)) return acc_sqrt(ss);
  Acc a = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc f = acc_abs(static_cast<Acc>(x[k * stride]));
    a = f > a ? f : a;
  }
  if (a == 0) return 0;
  Acc t = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc f = static_cast<Acc>(x[k * stride]) / a;
    t += f * f;
  }
  return a * acc_sqrt(t);
}

// ---------------------------------------------------------------------------------------
// Tokens vectors are split into segments (nn/bcn_cuda_launch.h's tokens_segments: one warp
// per segment u = v * S + s). Reductions over a split vector write per-segment partials that a
// second kernel adds in a fixed order (no atomics: the same bits every run).

int64_t sm_count() {
  return at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
}

// ---------------------------------------------------------------------------------------
// Forward pass 1: ||x|| per vector, into the table's row kM.

// ||x|| of one contiguous vector from its sum of squares ss (the same in every lane): ss's
// root when in the safe range, else a ||x / a|| with a = max|x_k| (rare: the warp reads x
// twice more). Warp-uniform; every lane returns the norm.
template <typename T, typename Acc>
__device__ Acc warp_finish_norm(Acc ss, const T* __restrict__ xv, int64_t D, int lane) {
  if (in_safe_range(ss)) return acc_sqrt(ss);
  Acc a = 0;
  for (int64_t k = lane; k < D; k += kWarp) {
    const Acc f = acc_abs(static_cast<Acc>(xv[k]));
    a = f > a ? f : a;
  }
  a = warp_max(a);
  Acc t = 0;
  if (a != 0)
    for (int64_t k = lane; k < D; k += kWarp) {
      const Acc f = static_cast<Acc>(xv[k]) / a;
      t += f * f;
    }
  t = warp_sum(t);
  return a == 0 ? Acc(0) : a * acc_sqrt(t);
}

// Tokens: one warp per segment (contiguous), 16-byte loads when VEC > 1. Lanes past the end
// of a short vector (D < 32) add 0 and still take part in the shuffles. S = 1: the norm into
// m; S > 1: the segment's sum of squares into part, for tokens_norms_combine.
template <typename T, typename Acc, int VEC>
__global__ void __launch_bounds__(kThreads)
    tokens_norms(const T* __restrict__ x, int64_t V, int64_t D, int64_t S, int64_t L,
                 Acc* __restrict__ m, Acc* __restrict__ part) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; u < V * S;
       u += static_cast<int64_t>(gridDim.x) * kWarps) {  // warp-uniform: no lane leaves early
    const auto [v, c0, c1] = segment_packs<VEC>(u, S, L, D);
    const T* xv = x + v * D;
    Acc ss = 0;
    for (int64_t c = c0 + lane; c < c1; c += kWarp) {
      const auto p = load_pack<T, VEC>(xv + c * VEC);
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const Acc f = static_cast<Acc>(p.v[j]);
        ss += f * f;
      }
    }
    ss = warp_sum(ss);
    if (S > 1) {
      if (lane == 0) part[u] = ss;
      continue;
    }
    const Acc norm = warp_finish_norm<T, Acc>(ss, xv, D, lane);
    if (lane == 0) m[v] = norm;
  }
}

// A split vector's norm from its segments' sums of squares, added in segment order. A sum
// out of the safe range (a segment's overflowed to inf, or all underflowed) takes the
// rescaled path over the whole vector, as an unsplit one would.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    tokens_norms_combine(const T* __restrict__ x, int64_t V, int64_t D, int64_t S,
                         const Acc* __restrict__ part, Acc* __restrict__ m) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; v < V;
       v += static_cast<int64_t>(gridDim.x) * kWarps) {
    Acc ss = 0;
    for (int64_t s = lane; s < S; s += kWarp) ss += part[v * S + s];
    ss = warp_sum(ss);
    const Acc norm = warp_finish_norm<T, Acc>(ss, x + v * D, D, lane);
    if (lane == 0) m[v] = norm;
  }
}

// Channels: a (32, kRows) block takes 32 consecutive vectors (flattened over samples, so
// nothing idles when P < 32); threadIdx.y splits the D features, so a warp reads 32
// consecutive positions of one feature row (coalesced) and small maps still fill the GPU.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads2d)
    channels_norms(const T* __restrict__ x, int64_t V, int64_t P, int64_t D, Acc* __restrict__ m) {
  __shared__ Acc part[kRows][kWarp + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t vb = blockIdx.x; vb < ceil_div(V, kWarp); vb += gridDim.x) {
    const int64_t v = vb * kWarp + tx;
    const bool valid = v < V;
    int64_t base = 0;
    Acc ss = 0;
    if (valid) {
      const int64_t n = v / P;
      base = n * D * P + (v - n * P);
      for (int64_t k = ty; k < D; k += kRows) {
        const Acc f = static_cast<Acc>(x[base + k * P]);
        ss += f * f;
      }
    }
    part[ty][tx] = ss;
    __syncthreads();
    if (ty == 0 && valid) {
      Acc t = 0;
      for (int r = 0; r < kRows; ++r) t += part[r][tx];
      m[v] = finish_norm<T, Acc>(t, x + base, D, P);
    }
    __syncthreads();  // part is rewritten by the next iteration
  }
}

// ---------------------------------------------------------------------------------------
// Forward, between the passes: m~ = gamma (m - mu) rho + beta per group, then per vector
// s = (1 - alpha) + alpha (bound(m~) + 1) / 2 and the output's y = (A x + Z) w + b with
// A = c s / m, Z = 0, or for a zero vector A = 0, Z = c s / sqrt(d) (the uniform direction).

// k / m as (k / (m xs)) * xs with xs a power of two: 1 unless m < 2^-60, where k / m could
// overflow float (1/m does for m below ~3e-39) — then xs = 2^(-e/2), m = 2^e, and both
// factors fit; x xs is exact (bcn_function.cpp's split_scale, the same numbers).
__device__ __forceinline__ double split_scale(double k, double m, double& xs) {
  if (m >= 0x1p-60) {
    xs = 1.0;
    return k / m;
  }
  xs = ldexp(1.0, -ilogb(m) / 2);
  return k / (m * xs);
}

struct ScaleParams {
  bool tanh;
  double alpha, scale, uniform, eps;
};

template <typename T, typename Acc>
__device__ __forceinline__ void set_scale(int64_t v, int64_t V, double m, double xm, double mt,
                                          const ScaleParams& sp, Acc* __restrict__ table,
                                          T* __restrict__ s_out) {
  double bv, slope;  // bound(m~) and its slope: sech^2 = 1 - tanh^2, or clip's [-1, 1] indicator
  if (sp.tanh) {
    bv = tanh(mt);
    slope = 1.0 - bv * bv;
  } else {
    bv = fmin(1.0, fmax(-1.0, mt));
    slope = (mt >= -1.0 && mt <= 1.0) ? 1.0 : 0.0;
  }
  const double s = (1.0 - sp.alpha) + sp.alpha * (bv + 1.0) * 0.5;
  const double cs = sp.scale * s;
  table[kS * V + v] = static_cast<Acc>(s);
  table[kXm * V + v] = static_cast<Acc>(xm);
  table[kDs * V + v] = static_cast<Acc>(0.5 * sp.alpha * slope);
  double xs = 1.0;
  table[kA * V + v] = static_cast<Acc>(m > 0 ? split_scale(cs, m, xs) : 0.0);
  table[kZ * V + v] = static_cast<Acc>(m > 0 ? 0.0 : cs * sp.uniform);
  table[kXs * V + v] = static_cast<Acc>(xs);
  s_out[v] = static_cast<T>(static_cast<Acc>(s));
}

// Modes without a reduction over vectors: one thread per vector.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    scales_per_vector(int64_t V, BcnCudaMode mode, ScaleParams sp,
                      const double* __restrict__ gamma_p, const double* __restrict__ beta_p,
                      const double* __restrict__ running, Acc* __restrict__ table,
                      double* __restrict__ grho, T* __restrict__ s_out) {
  const bool identity = mode == BcnCudaMode::Identity;
  const double gamma = identity ? 1.0 : *gamma_p, beta = identity ? 0.0 : *beta_p;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; v < V;
       v += static_cast<int64_t>(gridDim.x) * kThreads) {
    const double m = static_cast<double>(table[kM * V + v]);
    if (identity) {
      set_scale<T, Acc>(v, V, m, 0.0, m, sp, table, s_out);
    } else if (mode == BcnCudaMode::Running) {
      const double r = 1.0 / sqrt(running[1] + sp.eps);
      const double xm = (m - running[0]) * r;
      set_scale<T, Acc>(v, V, m, xm, gamma * xm + beta, sp, table, s_out);
      if (v == 0) grho[0] = gamma * r;
    } else {  // PerVector: LayerNorm over one magnitude (mean: itself, variance: 0)
      const double mu = m, var = (m - mu) * (m - mu);
      const double rho = 1.0 / sqrt(var + sp.eps);
      const double xm = (m - mu) * rho;
      set_scale<T, Acc>(v, V, m, xm, gamma * xm + beta, sp, table, s_out);
      grho[v] = gamma * rho;
    }
  }
}

// Statistics over a sample's P vectors: one block per sample (two-pass mean and variance, as
// on the CPU), then the vectors.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    scales_per_sample(int64_t G, int64_t size, ScaleParams sp, const double* __restrict__ gamma_p,
                      const double* __restrict__ beta_p, Acc* __restrict__ table,
                      double* __restrict__ grho, T* __restrict__ s_out) {
  __shared__ double smem[kWarps];
  const double gamma = *gamma_p, beta = *beta_p;
  const int64_t V = G * size;
  const double n = static_cast<double>(size);
  for (int64_t g = blockIdx.x; g < G; g += gridDim.x) {  // block-uniform: the syncs are safe
    const int64_t a = g * size;
    double sum = 0;
    for (int64_t i = threadIdx.x; i < size; i += kThreads)
      sum += static_cast<double>(table[kM * V + a + i]);
    const double mu = block_sum(sum, smem) / n;
    double sq = 0;
    for (int64_t i = threadIdx.x; i < size; i += kThreads) {
      const double d = static_cast<double>(table[kM * V + a + i]) - mu;
      sq += d * d;
    }
    const double var = block_sum(sq, smem) / n;
    const double rho = 1.0 / sqrt(var + sp.eps);
    if (threadIdx.x == 0) grho[g] = gamma * rho;
    for (int64_t i = threadIdx.x; i < size; i += kThreads) {
      const double m = static_cast<double>(table[kM * V + a + i]);
      const double xm = (m - mu) * rho;
      set_scale<T, Acc>(a + i, V, m, xm, gamma * xm + beta, sp, table, s_out);
    }
  }
}

// Statistics over every vector of the batch (stats: batch in training). One block would
// take longer than the passes over the tensor (V = 200k magnitudes for a ResNet stage), so:
// per-block partial sums of a contiguous chunk each, and every block then adds all partials
// in the same order (same bits everywhere). Three launches: the sum, the centred squares
// (the CPU's two-pass variance), the scales.
// (nn/bcn_cuda_launch.h's batch_split; block b takes chunk_rows(b, chunk, V).)

// sum_i p[i * stride + offset] over i < count, in a fixed order, to every thread of the block.
__device__ __forceinline__ double sum_partials(const double* __restrict__ p, int64_t count,
                                               int stride, int offset, double* smem) {
  double t = 0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) t += p[i * stride + offset];
  return block_sum(t, smem);
}

template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    batch_sum_m(int64_t V, int64_t chunk, const Acc* __restrict__ table,
                double* __restrict__ partial) {
  __shared__ double smem[kWarps];
  const auto [a, e] = chunk_rows(blockIdx.x, chunk, V);
  double sum = 0;
  for (int64_t v = a + threadIdx.x; v < e; v += kThreads)
    sum += static_cast<double>(table[kM * V + v]);
  sum = block_sum(sum, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    batch_sq_m(int64_t V, int64_t chunk, const Acc* __restrict__ table,
               const double* __restrict__ sums, int64_t blocks, double* __restrict__ partial) {
  __shared__ double smem[kWarps];
  const double mu = sum_partials(sums, blocks, 1, 0, smem) / static_cast<double>(V);
  const auto [a, e] = chunk_rows(blockIdx.x, chunk, V);
  double sq = 0;
  for (int64_t v = a + threadIdx.x; v < e; v += kThreads) {
    const double d = static_cast<double>(table[kM * V + v]) - mu;
    sq += d * d;
  }
  sq = block_sum(sq, smem);
  if (threadIdx.x == 0) partial[blockIdx.x] = sq;
}

template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads)
    batch_scales(int64_t V, int64_t chunk, ScaleParams sp, const double* __restrict__ gamma_p,
                 const double* __restrict__ beta_p, const double* __restrict__ sums,
                 const double* __restrict__ sqs, int64_t blocks, Acc* __restrict__ table,
                 double* __restrict__ grho, double* __restrict__ batch, T* __restrict__ s_out) {
  __shared__ double smem[kWarps];
  const double gamma = *gamma_p, beta = *beta_p;
  const double mu = sum_partials(sums, blocks, 1, 0, smem) / static_cast<double>(V);
  const double var = sum_partials(sqs, blocks, 1, 0, smem) / static_cast<double>(V);
  const double rho = 1.0 / sqrt(var + sp.eps);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    batch[0] = mu;
    batch[1] = var;
    grho[0] = gamma * rho;
  }
  const auto [a, e] = chunk_rows(blockIdx.x, chunk, V);
  for (int64_t v = a + threadIdx.x; v < e; v += kThreads) {
    const double m = static_cast<double>(table[kM * V + v]);
    const double xm = (m - mu) * rho;
    set_scale<T, Acc>(v, V, m, xm, gamma * xm + beta, sp, table, s_out);
  }
}

// ---------------------------------------------------------------------------------------
// Forward pass 2: y = (A (x Xs) + Z) w + b (Xs = 1 but for tiny vectors; x * 1 is exact).

// Tokens: one warp per segment (its vector's A, Z loaded once).
template <typename T, typename Acc, int VEC, bool Affine>
__global__ void __launch_bounds__(kThreads)
    tokens_output(const T* __restrict__ x, const Acc* __restrict__ table, const Acc* __restrict__ w,
                  const Acc* __restrict__ b, int64_t V, int64_t D, int64_t S, int64_t L,
                  T* __restrict__ y) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; u < V * S;
       u += static_cast<int64_t>(gridDim.x) * kWarps) {
    const auto [v, c0, c1] = segment_packs<VEC>(u, S, L, D);
    const Acc a = table[kA * V + v], z = table[kZ * V + v], xs = table[kXs * V + v];
    const T* xv = x + v * D;
    T* yv = y + v * D;
    for (int64_t c = c0 + lane; c < c1; c += kWarp) {
      const auto p = load_pack<T, VEC>(xv + c * VEC);
      Pack<T, VEC> out;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        Acc r = a * (static_cast<Acc>(p.v[j]) * xs) + z;
        if constexpr (Affine) r = r * w[c * VEC + j] + b[c * VEC + j];
        out.v[j] = static_cast<T>(r);
      }
      store_pack<T, VEC>(yv + c * VEC, out);
    }
  }
}

// Channels: one warp per row (n, k) of P contiguous positions: w_k, b_k loaded once, the
// per-vector A, Z of sample n read by the 8 warps of a block (8 features of one sample) from
// L1. A row of P = 1 (the (N, C) layout) keeps one lane busy: such tensors are small.
template <typename T, typename Acc, int VEC, bool Affine>
__global__ void __launch_bounds__(kThreads)
    channels_output(const T* __restrict__ x, const Acc* __restrict__ table,
                    const Acc* __restrict__ w, const Acc* __restrict__ b, int64_t N, int64_t P,
                    int64_t D, T* __restrict__ y) {
  const int lane = threadIdx.x % kWarp;
  const int64_t V = N * P, rows = N * D;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t n = row / D, k = row - n * D;
    const Acc wk = Affine ? w[k] : Acc(1), bk = Affine ? b[k] : Acc(0);
    const Acc* A = table + kA * V + n * P;
    const Acc* Z = table + kZ * V + n * P;
    const Acc* Xs = table + kXs * V + n * P;
    const T* xr = x + row * P;
    T* yr = y + row * P;
    for (int64_t c = lane; c < P / VEC; c += kWarp) {
      const auto p = load_pack<T, VEC>(xr + c * VEC);
      Pack<T, VEC> out;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const int64_t q = c * VEC + j;
        Acc r = A[q] * (static_cast<Acc>(p.v[j]) * Xs[q]) + Z[q];
        if constexpr (Affine) r = r * wk + bk;
        out.v[j] = static_cast<T>(r);
      }
      store_pack<T, VEC>(yr + c * VEC, out);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Backward pass 1: per vector dot = sum_k h_k x_k and gsum = sum_k h_k, h = dy w (w = 1
// without the affine). Same parallelization as the norms: with S > 1 segments per vector,
// per-segment sums into part (2, V * S) for tokens_grad_sums_combine.

template <typename T, typename Acc, int VEC, bool Affine>
__global__ void __launch_bounds__(kThreads)
    tokens_grad_sums(const T* __restrict__ gy, const T* __restrict__ x, const Acc* __restrict__ w,
                     int64_t V, int64_t D, int64_t S, int64_t L, Acc* __restrict__ sums,
                     Acc* __restrict__ part) {
  const int lane = threadIdx.x % kWarp;
  const int64_t U = V * S;
  for (int64_t u = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; u < U;
       u += static_cast<int64_t>(gridDim.x) * kWarps) {
    const auto [v, c0, c1] = segment_packs<VEC>(u, S, L, D);
    const T* xv = x + v * D;
    const T* gv = gy + v * D;
    Acc dot = 0, gsum = 0;
    for (int64_t c = c0 + lane; c < c1; c += kWarp) {
      const auto g = load_pack<T, VEC>(gv + c * VEC);
      const auto p = load_pack<T, VEC>(xv + c * VEC);
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        Acc h = static_cast<Acc>(g.v[j]);
        if constexpr (Affine) h *= w[c * VEC + j];
        dot += h * static_cast<Acc>(p.v[j]);
        gsum += h;
      }
    }
    dot = warp_sum(dot);
    gsum = warp_sum(gsum);
    if (lane == 0) {
      if (S > 1) {
        part[u] = dot;
        part[U + u] = gsum;
      } else {
        sums[kDot * V + v] = dot;
        sums[kGsum * V + v] = gsum;
      }
    }
  }
}

// A split vector's dot and gsum: its segments' partials added in segment order.
template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    tokens_grad_sums_combine(int64_t V, int64_t S, const Acc* __restrict__ part,
                             Acc* __restrict__ sums) {
  const int lane = threadIdx.x % kWarp;
  const int64_t U = V * S;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; v < V;
       v += static_cast<int64_t>(gridDim.x) * kWarps) {
    Acc dot = 0, gsum = 0;
    for (int64_t s = lane; s < S; s += kWarp) {
      dot += part[v * S + s];
      gsum += part[U + v * S + s];
    }
    dot = warp_sum(dot);
    gsum = warp_sum(gsum);
    if (lane == 0) {
      sums[kDot * V + v] = dot;
      sums[kGsum * V + v] = gsum;
    }
  }
}

template <typename T, typename Acc, bool Affine>
__global__ void __launch_bounds__(kThreads2d)
    channels_grad_sums(const T* __restrict__ gy, const T* __restrict__ x, const Acc* __restrict__ w,
                       int64_t V, int64_t P, int64_t D, Acc* __restrict__ sums) {
  __shared__ Acc pd[kRows][kWarp + 1], ps[kRows][kWarp + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t vb = blockIdx.x; vb < ceil_div(V, kWarp); vb += gridDim.x) {
    const int64_t v = vb * kWarp + tx;
    Acc dot = 0, gsum = 0;
    if (v < V) {
      const int64_t n = v / P;
      const int64_t base = n * D * P + (v - n * P);
      for (int64_t k = ty; k < D; k += kRows) {
        Acc h = static_cast<Acc>(gy[base + k * P]);
        if constexpr (Affine) h *= w[k];
        dot += h * static_cast<Acc>(x[base + k * P]);
        gsum += h;
      }
    }
    pd[ty][tx] = dot;
    ps[ty][tx] = gsum;
    __syncthreads();
    if (ty == 0 && v < V) {
      Acc td = 0, tg = 0;
      for (int r = 0; r < kRows; ++r) {
        td += pd[r][tx];
        tg += ps[r][tx];
      }
      sums[kDot * V + v] = td;
      sums[kGsum * V + v] = tg;
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------
// Backward, between the passes (§4.1): with u = x / m, hu = h.u (for a zero vector, the
// uniform direction's), q = dL/dm~ = c hu ds/dm~, p = dL/dm through the magnitude LayerNorm
// (its standard backward per group: gamma rho (q - mean q - xm mean(q xm))), and then
//   dL/dx = A2 h + B2 x,  A2 = c s / m,  B2 = (p - A2 hu) / m;  zero vectors: 0.
// B2 x is computed as C2 (x / m) with C2 = p - A2 hu: B2 itself is ~ c s hu / m^2, which
// overflows for m below ~1e-154 in double (1e-19 in float) while dL/dx does not.
// dL/dgamma = sum q xm and dL/dbeta = sum q over all vectors: per-block (or per-group)
// partials added in a fixed order, no atomics.

template <typename Acc>
__device__ __forceinline__ double grad_q(int64_t v, int64_t V, const Acc* __restrict__ table,
                                         const Acc* __restrict__ sums, double scale, double uniform,
                                         double& hu, double& xm) {
  const double m = static_cast<double>(table[kM * V + v]);
  hu = m > 0 ? static_cast<double>(sums[kDot * V + v]) / m
             : uniform * static_cast<double>(sums[kGsum * V + v]);
  xm = static_cast<double>(table[kXm * V + v]);
  return scale * hu * static_cast<double>(table[kDs * V + v]);
}

template <typename Acc>
__device__ __forceinline__ void set_coef(int64_t v, int64_t V, const Acc* __restrict__ table,
                                         double hu, double p, double scale,
                                         Acc* __restrict__ coef) {
  const double m = static_cast<double>(table[kM * V + v]);
  double a2 = 0, c2 = 0, inv = 0;
  if (m > 0) {
    a2 = scale * static_cast<double>(table[kS * V + v]) / m;
    c2 = p - a2 * hu;
    double xs;
    inv = split_scale(1.0, m, xs);  // 1 / (m Xs): x / m as (x Xs) * inv
  }
  coef[kA2 * V + v] = static_cast<Acc>(a2);
  coef[kC2 * V + v] = static_cast<Acc>(c2);
  coef[kInvM * V + v] = static_cast<Acc>(inv);
}

// sum q and sum q xm over the vectors [a, e), shared by the block's threads, to every thread
// (block_sum's fixed order). Every thread of the block must call it.
template <typename Acc>
__device__ __forceinline__ void block_sum_q(int64_t a, int64_t e, int64_t V,
                                            const Acc* __restrict__ table,
                                            const Acc* __restrict__ sums, double scale,
                                            double uniform, double* smem, double& tq,
                                            double& tqx) {
  double sq = 0, sqx = 0;
  for (int64_t v = a + threadIdx.x; v < e; v += kThreads) {
    double hu, xm;
    const double q = grad_q(v, V, table, sums, scale, uniform, hu, xm);
    sq += q;
    sqx += q * xm;
  }
  tq = block_sum(sq, smem);
  tqx = block_sum(sqx, smem);
}

// Identity, Running, PerVector. partial: per block (sum q xm, sum q), or null for Identity.
template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    coef_per_vector(int64_t V, BcnCudaMode mode, double scale, double uniform,
                    const Acc* __restrict__ table, const Acc* __restrict__ sums,
                    const double* __restrict__ grho, Acc* __restrict__ coef,
                    double* __restrict__ partial) {
  __shared__ double smem[kWarps];
  double tq = 0, tqx = 0;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; v < V;
       v += static_cast<int64_t>(gridDim.x) * kThreads) {
    double hu, xm;
    const double q = grad_q(v, V, table, sums, scale, uniform, hu, xm);
    double p;
    if (mode == BcnCudaMode::Identity) {
      p = q;
    } else if (mode == BcnCudaMode::Running) {
      p = grho[0] * q;
    } else {  // a group of one: its means of q and q xm are its own
      const double mq = q, mqx = q * xm;
      p = grho[v] * (q - mq - xm * mqx);
    }
    set_coef(v, V, table, hu, p, scale, coef);
    tq += q;
    tqx += q * xm;
  }
  if (partial != nullptr) {  // a kernel argument: the same in every thread
    tqx = block_sum(tqx, smem);
    tq = block_sum(tq, smem);
    if (threadIdx.x == 0) {
      partial[2 * blockIdx.x] = tqx;
      partial[2 * blockIdx.x + 1] = tq;
    }
  }
}

// Sample: one block per sample; partial: per sample.
template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    coef_per_sample(int64_t G, int64_t size, double scale, double uniform,
                    const Acc* __restrict__ table, const Acc* __restrict__ sums,
                    const double* __restrict__ grho, Acc* __restrict__ coef,
                    double* __restrict__ partial) {
  __shared__ double smem[kWarps];
  const int64_t V = G * size;
  const double n = static_cast<double>(size);
  for (int64_t g = blockIdx.x; g < G; g += gridDim.x) {
    const int64_t a = g * size;
    double tq, tqx;
    block_sum_q(a, a + size, V, table, sums, scale, uniform, smem, tq, tqx);
    const double mq = tq / n, mqx = tqx / n;
    for (int64_t i = threadIdx.x; i < size; i += kThreads) {
      double hu, xm;
      const double q = grad_q(a + i, V, table, sums, scale, uniform, hu, xm);
      set_coef(a + i, V, table, hu, grho[g] * (q - mq - xm * mqx), scale, coef);
    }
    if (threadIdx.x == 0) {
      partial[2 * g] = tqx;
      partial[2 * g + 1] = tq;
    }
  }
}

// Batch (training): the forward's chunks; partials, then every block adds them all.
template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    batch_grad_sums(int64_t V, int64_t chunk, double scale, double uniform,
                    const Acc* __restrict__ table, const Acc* __restrict__ sums,
                    double* __restrict__ partial) {
  __shared__ double smem[kWarps];
  const auto [a, e] = chunk_rows(blockIdx.x, chunk, V);
  double tq, tqx;
  block_sum_q(a, e, V, table, sums, scale, uniform, smem, tq, tqx);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = tqx;
    partial[2 * blockIdx.x + 1] = tq;
  }
}

template <typename Acc>
__global__ void __launch_bounds__(kThreads)
    batch_coef(int64_t V, int64_t chunk, double scale, double uniform,
               const Acc* __restrict__ table, const Acc* __restrict__ sums,
               const double* __restrict__ grho, const double* __restrict__ partial, int64_t blocks,
               Acc* __restrict__ coef, double* __restrict__ dmag) {
  __shared__ double smem[kWarps];
  const double tqx = sum_partials(partial, blocks, 2, 0, smem);
  const double tq = sum_partials(partial, blocks, 2, 1, smem);
  const double mq = tq / static_cast<double>(V), mqx = tqx / static_cast<double>(V);
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    dmag[0] = tqx;
    dmag[1] = tq;
  }
  const auto [a, e] = chunk_rows(blockIdx.x, chunk, V);
  for (int64_t v = a + threadIdx.x; v < e; v += kThreads) {
    double hu, xm;
    const double q = grad_q(v, V, table, sums, scale, uniform, hu, xm);
    set_coef(v, V, table, hu, grho[0] * (q - mq - xm * mqx), scale, coef);
  }
}

// dmag = the sums of the (sum q xm, sum q) partials: one block.
__global__ void __launch_bounds__(kThreads)
    sum_pairs(const double* __restrict__ partial, int64_t count, double* __restrict__ dmag) {
  __shared__ double smem[kWarps];
  const double tqx = sum_partials(partial, count, 2, 0, smem);
  const double tq = sum_partials(partial, count, 2, 1, smem);
  if (threadIdx.x == 0) {
    dmag[0] = tqx;
    dmag[1] = tq;
  }
}

// ---------------------------------------------------------------------------------------
// Backward pass 2: dL/dx = A2 h + C2 (x / m), x / m as (x Xs) * InvM, and with the affine
// its gradients dL/dw_k = sum_v dy_vk (A_v x_vk Xs_v + Z_v),  dL/db_k = sum_v dy_vk,
// folded into this pass: it reads dy and x anyway, so the affine costs no pass of its own
// (a separate column-reduction kernel would read both again: 2 of the backward's 5 tensor
// passes more). Each block writes its partial column sums; column_sums adds them in a fixed
// order (deterministic, no atomics, no zero-filled accumulator).

// Tokens: a block is a tile of 32 * VEC columns (a warp reads one row's 32 * VEC contiguous
// values: coalesced) by a chunk of rows; threadIdx.y strides the rows, and each thread keeps
// its columns' sums in registers, reduced over threadIdx.y in shared memory at the end.
// partial: (2, chunks, D).
template <typename T, typename Acc, int VEC, bool Affine>
__global__ void __launch_bounds__(kThreads2d)
    tokens_grad_input(const T* __restrict__ gy, const T* __restrict__ x, const Acc* __restrict__ w,
                      const Acc* __restrict__ table, const Acc* __restrict__ coef, int64_t V,
                      int64_t D, int64_t tiles, int64_t rows_per_chunk, T* __restrict__ dx,
                      Acc* __restrict__ partial) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tile = blockIdx.x % tiles, chunk = blockIdx.x / tiles;
  const int64_t chunks = gridDim.x / tiles;
  const int64_t c = tile * kWarp + tx;  // this thread's columns: [c * VEC, c * VEC + VEC)
  const bool valid = c < D / VEC;
  const int64_t k0 = c * VEC;
  const auto [r0, r1] = chunk_rows(chunk, rows_per_chunk, V);
  Acc wk[VEC], gw[VEC], gb[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) {
    wk[j] = (Affine && valid) ? w[k0 + j] : Acc(1);
    gw[j] = gb[j] = 0;
  }
  if (valid) {
    for (int64_t r = r0 + ty; r < r1; r += kRows) {
      const Acc a2 = coef[kA2 * V + r], c2 = coef[kC2 * V + r], inv = coef[kInvM * V + r];
      const Acc xs = table[kXs * V + r];
      Acc a = 0, z = 0;
      if constexpr (Affine) {
        a = table[kA * V + r];
        z = table[kZ * V + r];
      }
      const int64_t off = r * D + k0;
      const auto g = load_pack<T, VEC>(gy + off);
      const auto p = load_pack<T, VEC>(x + off);
      Pack<T, VEC> out;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const Acc gj = static_cast<Acc>(g.v[j]), xj = static_cast<Acc>(p.v[j]) * xs;
        out.v[j] = static_cast<T>(a2 * (gj * wk[j]) + c2 * (xj * inv));
        if constexpr (Affine) {
          gw[j] += gj * (a * xj + z);
          gb[j] += gj;
        }
      }
      store_pack<T, VEC>(dx + off, out);
    }
  }
  if constexpr (Affine) {
    __shared__ Acc sw[kRows][VEC][kWarp], sb[kRows][VEC][kWarp];
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      sw[ty][j][tx] = gw[j];
      sb[ty][j][tx] = gb[j];
    }
    __syncthreads();
    if (ty == 0 && valid) {
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        Acc tw = 0, tb = 0;
        for (int r = 0; r < kRows; ++r) {
          tw += sw[r][j][tx];
          tb += sb[r][j][tx];
        }
        partial[chunk * D + k0 + j] = tw;
        partial[(chunks + chunk) * D + k0 + j] = tb;
      }
    }
  }
}

// Channels: one warp per row (n, k), as channels_output; the row's affine sums are a warp
// reduction. partial: (2, N, D).
template <typename T, typename Acc, int VEC, bool Affine>
__global__ void __launch_bounds__(kThreads)
    channels_grad_input(const T* __restrict__ gy, const T* __restrict__ x,
                        const Acc* __restrict__ w, const Acc* __restrict__ table,
                        const Acc* __restrict__ coef, int64_t N, int64_t P, int64_t D,
                        T* __restrict__ dx, Acc* __restrict__ partial) {
  const int lane = threadIdx.x % kWarp;
  const int64_t V = N * P, rows = N * D;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const int64_t n = row / D, k = row - n * D;
    const Acc wk = Affine ? w[k] : Acc(1);
    const int64_t off = row * P, v0 = n * P;
    Acc gw = 0, gb = 0;
    for (int64_t c = lane; c < P / VEC; c += kWarp) {
      const auto g = load_pack<T, VEC>(gy + off + c * VEC);
      const auto p = load_pack<T, VEC>(x + off + c * VEC);
      Pack<T, VEC> out;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const int64_t v = v0 + c * VEC + j;
        const Acc gj = static_cast<Acc>(g.v[j]);
        const Acc xj = static_cast<Acc>(p.v[j]) * table[kXs * V + v];
        out.v[j] = static_cast<T>(coef[kA2 * V + v] * (gj * wk) +
                                  coef[kC2 * V + v] * (xj * coef[kInvM * V + v]));
        if constexpr (Affine) {
          gw += gj * (table[kA * V + v] * xj + table[kZ * V + v]);
          gb += gj;
        }
      }
      store_pack<T, VEC>(dx + off + c * VEC, out);
    }
    if constexpr (Affine) {
      gw = warp_sum(gw);  // row is warp-uniform: every lane is here
      gb = warp_sum(gb);
      if (lane == 0) {
        partial[row] = gw;
        partial[rows + row] = gb;
      }
    }
  }
}

// dw_k, db_k: the sums of the R partials of column k. A block takes a tile of kWarp columns
// (a warp reads 32 consecutive columns of a row: coalesced) and its kColumnRows warps split
// the R rows (warp y: rows y, y + kColumnRows, ...); the warps' sums are then added in warp
// order, a fixed order, so the result does not depend on scheduling. One thread per column
// over all R rows (the first version) took 55 us for D = 768 and 107 us for D = 192 on the
// H200, more than the rest of BCN's backward: a few blocks on 132 SMs, R dependent loads each.
constexpr int kColumnRows = 32;

template <typename Acc>
__global__ void __launch_bounds__(kWarp * kColumnRows)
    column_sums(const Acc* __restrict__ partial, int64_t R, int64_t D, Acc* __restrict__ dw,
                Acc* __restrict__ db) {
  __shared__ double sw[kColumnRows][kWarp], sb[kColumnRows][kWarp];
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t tile = blockIdx.x; tile < ceil_div(D, kWarp); tile += gridDim.x) {
    const int64_t k = tile * kWarp + tx;
    double tw = 0, tb = 0;
    if (k < D)
      for (int64_t r = ty; r < R; r += kColumnRows) {
        tw += static_cast<double>(partial[r * D + k]);
        tb += static_cast<double>(partial[(R + r) * D + k]);
      }
    sw[ty][tx] = tw;
    sb[ty][tx] = tb;
    __syncthreads();
    if (ty == 0 && k < D) {
      for (int y = 1; y < kColumnRows; ++y) {
        tw += sw[y][tx];
        tb += sb[y][tx];
      }
      dw[k] = static_cast<Acc>(tw);
      db[k] = static_cast<Acc>(tb);
    }
    __syncthreads();  // the next tile reuses sw, sb
  }
}

// ---------------------------------------------------------------------------------------
// Host side

template <int N>
using Int = std::integral_constant<int, N>;
template <bool B>
using Bool = std::integral_constant<bool, B>;

// fn(Int<VEC>) with VEC = 16 bytes of T where `vec`, else 1.
template <typename T, typename Fn>
void with_vec(bool vec, const Fn& fn) {
  if (vec)
    fn(Int<16 / sizeof(T)>{});
  else
    fn(Int<1>{});
}
template <typename Fn>
void with_affine(bool affine, const Fn& fn) {
  if (affine)
    fn(Bool<true>{});
  else
    fn(Bool<false>{});
}

template <typename Acc>
constexpr at::ScalarType acc_dtype() {
  return std::is_same<Acc, double>::value ? at::kDouble : at::kFloat;
}

template <typename T, typename Acc>
void forward_impl(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                  const double* gamma, const double* beta, const double* running,
                  const BcnCudaConfig& c, BcnCudaForward& out) {
  const int64_t N = c.N, P = c.P, D = c.D, V = N * P;
  constexpr int kVW = 16 / sizeof(T);
  const auto stream = at::cuda::getCurrentCUDAStream();
  out.table = at::empty({kCols, V}, x.options().dtype(acc_dtype<Acc>()));
  const T* xp = x.data_ptr<T>();
  T* yp = out.y.data_ptr<T>();
  T* s_out = out.s.data_ptr<T>();
  Acc* table = out.table.data_ptr<Acc>();
  double* grho = out.grho.data_ptr<double>();
  const bool affine = weight.defined();
  const Acc* wp = affine ? weight.data_ptr<Acc>() : nullptr;
  const Acc* bp = affine ? bias.data_ptr<Acc>() : nullptr;

  // Pass 1: ||x||.
  if (!c.channels) {
    with_vec<T>(D % kVW == 0 && aligned16(xp), [&](auto vc) {
      constexpr int VEC = decltype(vc)::value;
      const Segments sg = tokens_segments(V, D, VEC, sm_count());
      const at::Tensor part =
          sg.S > 1 ? at::empty({V * sg.S}, x.options().dtype(acc_dtype<Acc>())) : at::Tensor();
      Acc* pp = sg.S > 1 ? part.data_ptr<Acc>() : nullptr;
      tokens_norms<T, Acc, VEC><<<grid_of(ceil_div(V * sg.S, kWarps)), kThreads, 0, stream>>>(
          xp, V, D, sg.S, sg.L, table + kM * V, pp);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (sg.S > 1) {
        tokens_norms_combine<T, Acc><<<grid_of(ceil_div(V, kWarps)), kThreads, 0, stream>>>(
            xp, V, D, sg.S, pp, table + kM * V);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
    });
  } else {
    channels_norms<T, Acc><<<grid_of(ceil_div(V, kWarp)), dim3(kWarp, kRows), 0, stream>>>(
        xp, V, P, D, table + kM * V);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  // Between: the magnitude LayerNorm and the scales.
  const ScaleParams sp{c.tanh, c.alpha, c.scale, 1.0 / std::sqrt(static_cast<double>(D)), c.eps};
  switch (c.mode) {
    case BcnCudaMode::Identity:
    case BcnCudaMode::Running:
    case BcnCudaMode::PerVector:
      scales_per_vector<T, Acc><<<grid_of(ceil_div(V, kThreads)), kThreads, 0, stream>>>(
          V, c.mode, sp, gamma, beta, running, table, grho, s_out);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      break;
    case BcnCudaMode::Sample:
      scales_per_sample<T, Acc>
          <<<grid_of(N), kThreads, 0, stream>>>(N, P, sp, gamma, beta, table, grho, s_out);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      break;
    case BcnCudaMode::Batch: {
      const auto split = batch_split(V);
      auto part = at::empty({2, split.blocks}, x.options().dtype(at::kDouble));
      double* sums = part.data_ptr<double>();
      double* sqs = sums + split.blocks;
      const auto blocks = static_cast<unsigned>(split.blocks);
      batch_sum_m<Acc><<<blocks, kThreads, 0, stream>>>(V, split.chunk, table, sums);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      batch_sq_m<Acc>
          <<<blocks, kThreads, 0, stream>>>(V, split.chunk, table, sums, split.blocks, sqs);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      batch_scales<T, Acc><<<blocks, kThreads, 0, stream>>>(V, split.chunk, sp, gamma, beta, sums,
                                                            sqs, split.blocks, table, grho,
                                                            out.batch.data_ptr<double>(), s_out);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      break;
    }
  }

  // Pass 2: y.
  with_affine(affine, [&](auto ac) {
    constexpr bool Affine = decltype(ac)::value;
    if (!c.channels) {
      with_vec<T>(D % kVW == 0 && aligned16(xp) && aligned16(yp), [&](auto vc) {
        constexpr int VEC = decltype(vc)::value;
        const Segments sg = tokens_segments(V, D, VEC, sm_count());
        tokens_output<T, Acc, VEC, Affine>
            <<<grid_of(ceil_div(V * sg.S, kWarps)), kThreads, 0, stream>>>(xp, table, wp, bp, V, D,
                                                                           sg.S, sg.L, yp);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    } else {
      with_vec<T>(P % kVW == 0 && aligned16(xp) && aligned16(yp), [&](auto vc) {
        constexpr int VEC = decltype(vc)::value;
        channels_output<T, Acc, VEC, Affine>
            <<<grid_of(ceil_div(N * D, kWarps)), kThreads, 0, stream>>>(xp, table, wp, bp, N, P, D,
                                                                        yp);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
  });
}

template <typename T, typename Acc>
void backward_impl(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& weight,
                   const at::Tensor& table_t, const at::Tensor& grho_t, const BcnCudaConfig& c,
                   BcnCudaGrads& out) {
  const int64_t N = c.N, P = c.P, D = c.D, V = N * P;
  constexpr int kVW = 16 / sizeof(T);
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto acc_opt = x.options().dtype(acc_dtype<Acc>());
  const auto dopt = x.options().dtype(at::kDouble);
  const bool affine = weight.defined();
  const bool identity = c.mode == BcnCudaMode::Identity;
  const T* gp = gy.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  const Acc* wp = affine ? weight.data_ptr<Acc>() : nullptr;
  const Acc* table = table_t.data_ptr<Acc>();
  const double* grho = grho_t.data_ptr<double>();
  const at::Tensor sums_t = at::empty({2, V}, acc_opt);
  const at::Tensor coef_t = at::empty({3, V}, acc_opt);
  Acc* sums = sums_t.data_ptr<Acc>();
  Acc* coef = coef_t.data_ptr<Acc>();
  out.dx = at::empty_like(x, at::MemoryFormat::Contiguous);
  T* dxp = out.dx.data_ptr<T>();
  if (!identity) out.dmag = at::empty({2}, dopt);

  // Pass 1: dot and gsum per vector.
  with_affine(affine, [&](auto ac) {
    constexpr bool Affine = decltype(ac)::value;
    if (!c.channels) {
      with_vec<T>(D % kVW == 0 && aligned16(xp) && aligned16(gp), [&](auto vc) {
        constexpr int VEC = decltype(vc)::value;
        const Segments sg = tokens_segments(V, D, VEC, sm_count());
        const at::Tensor part = sg.S > 1 ? at::empty({2, V * sg.S}, acc_opt) : at::Tensor();
        Acc* pp = sg.S > 1 ? part.data_ptr<Acc>() : nullptr;
        tokens_grad_sums<T, Acc, VEC, Affine>
            <<<grid_of(ceil_div(V * sg.S, kWarps)), kThreads, 0, stream>>>(gp, xp, wp, V, D, sg.S,
                                                                           sg.L, sums, pp);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        if (sg.S > 1) {
          tokens_grad_sums_combine<Acc>
              <<<grid_of(ceil_div(V, kWarps)), kThreads, 0, stream>>>(V, sg.S, pp, sums);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
      });
    } else {
      channels_grad_sums<T, Acc, Affine>
          <<<grid_of(ceil_div(V, kWarp)), dim3(kWarp, kRows), 0, stream>>>(gp, xp, wp, V, P, D,
                                                                           sums);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });

  // Between: q, the magnitude LayerNorm's backward, dL/dx's coefficients, dL/dgamma, dL/dbeta.
  const double uniform = 1.0 / std::sqrt(static_cast<double>(D));
  switch (c.mode) {
    case BcnCudaMode::Identity:
    case BcnCudaMode::Running:
    case BcnCudaMode::PerVector: {
      const int64_t blocks = std::min(ceil_div(V, kThreads), kMaxPartials);
      at::Tensor part;
      if (!identity) part = at::empty({blocks, 2}, dopt);
      coef_per_vector<Acc><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          V, c.mode, c.scale, uniform, table, sums, grho, coef,
          identity ? nullptr : part.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (!identity) {
        sum_pairs<<<1, kThreads, 0, stream>>>(part.data_ptr<double>(), blocks,
                                              out.dmag.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      break;
    }
    case BcnCudaMode::Sample: {
      auto part = at::empty({N, 2}, dopt);
      coef_per_sample<Acc><<<grid_of(N), kThreads, 0, stream>>>(
          N, P, c.scale, uniform, table, sums, grho, coef, part.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      sum_pairs<<<1, kThreads, 0, stream>>>(part.data_ptr<double>(), N,
                                            out.dmag.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      break;
    }
    case BcnCudaMode::Batch: {
      const auto split = batch_split(V);
      auto part = at::empty({split.blocks, 2}, dopt);
      const auto blocks = static_cast<unsigned>(split.blocks);
      batch_grad_sums<Acc><<<blocks, kThreads, 0, stream>>>(V, split.chunk, c.scale, uniform, table,
                                                            sums, part.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      batch_coef<Acc><<<blocks, kThreads, 0, stream>>>(
          V, split.chunk, c.scale, uniform, table, sums, grho, part.data_ptr<double>(),
          split.blocks, coef, out.dmag.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      break;
    }
  }

  // Pass 2: dL/dx, and the affine's partial column sums.
  at::Tensor part;
  int64_t R = 0;
  with_affine(affine, [&](auto ac) {
    constexpr bool Affine = decltype(ac)::value;
    if (!c.channels) {
      with_vec<T>(D % kVW == 0 && aligned16(xp) && aligned16(gp) && aligned16(dxp), [&](auto vc) {
        constexpr int VEC = decltype(vc)::value;
        const auto [tiles, chunks, rows_per_chunk] = grad_input_grid(V, D, VEC, sm_count());
        TORCH_CHECK(tiles * chunks <= (int64_t{1} << 31) - 1, "bcn_fused: D = ", D, " too large");
        R = chunks;
        if (Affine) part = at::empty({2, R, D}, acc_opt);
        tokens_grad_input<T, Acc, VEC, Affine>
            <<<static_cast<unsigned>(tiles * chunks), dim3(kWarp, kRows), 0, stream>>>(
                gp, xp, wp, table, coef, V, D, tiles, rows_per_chunk, dxp,
                Affine ? part.data_ptr<Acc>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    } else {
      R = N;
      if (Affine) part = at::empty({2, R, D}, acc_opt);
      with_vec<T>(P % kVW == 0 && aligned16(xp) && aligned16(gp) && aligned16(dxp), [&](auto vc) {
        constexpr int VEC = decltype(vc)::value;
        channels_grad_input<T, Acc, VEC, Affine>
            <<<grid_of(ceil_div(N * D, kWarps)), kThreads, 0, stream>>>(
                gp, xp, wp, table, coef, N, P, D, dxp, Affine ? part.data_ptr<Acc>() : nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
  });
  if (affine) {
    out.dw = at::empty({D}, weight.options());
    out.db = at::empty({D}, weight.options());
    column_sums<Acc><<<grid_of(ceil_div(D, kWarp)), dim3(kWarp, kColumnRows), 0, stream>>>(
        part.data_ptr<Acc>(), R, D, out.dw.data_ptr<Acc>(), out.db.data_ptr<Acc>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

void check_config(const at::Tensor& x, const BcnCudaConfig& c) {
  TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "bcn_cuda: contiguous CUDA input expected");
  TORCH_CHECK(c.N >= 1 && c.P >= 1 && c.D >= 1 && x.numel() == c.N * c.P * c.D,
              "bcn_cuda: geometry ", c.N, " x ", c.P, " x ", c.D, " does not match ", x.sizes());
}

void check_on(const at::Tensor& t, const at::Tensor& x, at::ScalarType dtype, const char* what) {
  TORCH_CHECK(
      t.defined() && t.device() == x.device() && t.scalar_type() == dtype && t.is_contiguous(),
      "bcn_cuda: ", what, " must be a contiguous ", dtype, " tensor on ", x.device());
}

}  // namespace

BcnCudaForward bcn_cuda_forward(const at::Tensor& x, const at::Tensor& weight,
                                const at::Tensor& bias, const at::Tensor& mag_weight,
                                const at::Tensor& mag_bias, const at::Tensor& running,
                                const BcnCudaConfig& c) {
  check_config(x, c);
  const c10::cuda::CUDAGuard guard(x.device());
  const bool identity = c.mode == BcnCudaMode::Identity;
  const bool affine = weight.defined();
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (affine) {
    check_on(weight, x, acc, "weight");
    check_on(bias, x, acc, "bias");
    TORCH_CHECK(weight.numel() == c.D && bias.numel() == c.D, "bcn_cuda: affine of ",
                weight.numel(), " features for D = ", c.D);
  }
  if (!identity) {
    check_on(mag_weight, x, at::kDouble, "mag_weight");
    check_on(mag_bias, x, at::kDouble, "mag_bias");
  }
  if (c.mode == BcnCudaMode::Running) {
    check_on(running, x, at::kDouble, "running");
    TORCH_CHECK(running.numel() == 2, "bcn_cuda: running holds [mean, var]");
  }
  const int64_t V = c.N * c.P;
  const int64_t groups = c.mode == BcnCudaMode::Sample      ? c.N
                         : c.mode == BcnCudaMode::PerVector ? V
                                                            : 1;
  const auto dopt = x.options().dtype(at::kDouble);
  BcnCudaForward out;
  out.y = at::empty_like(x, at::MemoryFormat::Contiguous);
  out.s = at::empty({c.N, c.P}, x.options());
  out.batch = at::zeros({2}, dopt);
  out.grho = identity ? at::zeros({1}, dopt) : at::empty({groups}, dopt);
  const double* gamma = identity ? nullptr : mag_weight.data_ptr<double>();
  const double* beta = identity ? nullptr : mag_bias.data_ptr<double>();
  const double* run = c.mode == BcnCudaMode::Running ? running.data_ptr<double>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bcn_cuda_forward", [&] {
        using Acc = at::acc_type<scalar_t, /*is_cuda=*/true>;
        forward_impl<scalar_t, Acc>(x, weight, bias, gamma, beta, run, c, out);
      });
  return out;
}

BcnCudaGrads bcn_cuda_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& table, const at::Tensor& grho,
                               const BcnCudaConfig& c) {
  check_config(x, c);
  const c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(gy.sizes() == x.sizes() && gy.scalar_type() == x.scalar_type() &&
                  gy.device() == x.device() && gy.is_contiguous(),
              "bcn_cuda: the output's gradient must be contiguous, shaped and typed as x");
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  check_on(table, x, acc, "table");
  check_on(grho, x, at::kDouble, "grho");
  TORCH_CHECK(table.numel() == kCols * c.N * c.P, "bcn_cuda: table of another input");
  if (weight.defined()) check_on(weight, x, acc, "weight");
  BcnCudaGrads out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bcn_cuda_backward", [&] {
        using Acc = at::acc_type<scalar_t, /*is_cuda=*/true>;
        backward_impl<scalar_t, Acc>(gy, x, weight, table, grho, c, out);
      });
  return out;
}

}  // namespace normexp::nn::cuda_impl
