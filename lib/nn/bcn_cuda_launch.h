#pragma once
// Launch geometry of BCN's CUDA kernels (nn/bcn_cuda.cu): how vectors, rows and partial sums
// are split among warps and blocks. Plain C++ (host-and-device functions under nvcc) so that
// the CPU test suite can check, without a GPU, that every split covers its range exactly
// once: a pack read twice or never is a wrong norm or gradient that only a GPU would show.

#include <algorithm>
#include <cstdint>

#if defined(__CUDACC__)
#define NORMEXP_HOST_DEVICE __host__ __device__
#else
#define NORMEXP_HOST_DEVICE
#endif

namespace normexp::nn::cuda_impl {

constexpr int kWarp = 32;
constexpr int kThreads = 256;             // 1-d blocks
constexpr int kWarps = kThreads / kWarp;  // warps per 1-d block
constexpr int kRows = 8;                  // 2-d blocks: (kWarp, kRows)
constexpr int kThreads2d = kWarp * kRows;
constexpr int64_t kMaxPartials = 1024;  // blocks of the batch-statistics kernels

NORMEXP_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Tokens vectors in segments. One warp per vector leaves most of the GPU idle when there are
// few long vectors (vector: sample makes a sample's whole C*H*W map one vector: V = N, D in
// the hundreds of thousands), so the Tokens kernels take each vector as S segments of L
// values (L a multiple of vec), one warp per segment u = v * S + s; S = 1 for the many short
// vectors of token features. sms: the device's multiprocessors.
struct Segments {
  int64_t S, L;
};
inline Segments tokens_segments(int64_t V, int64_t D, int vec, int64_t sms) {
  const int64_t want = ceil_div(16 * sms, V);                        // ~16 warps an SM in all
  const int64_t most = std::max<int64_t>(1, D / (kWarp * vec * 8));  // >= 8 loads a lane
  const int64_t S = std::min(std::max<int64_t>(1, want), most);
  const int64_t L = ceil_div(ceil_div(D, S), vec) * vec;
  return {ceil_div(D, L), L};
}

// Segment u's vector v and its packs of VEC values [c0, c1). D is a multiple of VEC.
struct SegmentPacks {
  int64_t v, c0, c1;
};
template <int VEC>
NORMEXP_HOST_DEVICE inline SegmentPacks segment_packs(int64_t u, int64_t S, int64_t L, int64_t D) {
  const int64_t v = u / S;
  const int64_t k0 = (u - v * S) * L;
  return {v, k0 / VEC, (k0 + L < D ? k0 + L : D) / VEC};
}

// Statistics over every vector of the batch: per-block partial sums of a contiguous chunk of
// the V magnitudes each, at most kMaxPartials blocks (every block adds all partials).
struct BatchSplit {
  int64_t blocks, chunk;
};
inline BatchSplit batch_split(int64_t V) {
  const int64_t blocks = std::min(std::max<int64_t>(1, ceil_div(V, 4 * kThreads)), kMaxPartials);
  const int64_t chunk = ceil_div(V, blocks);
  return {ceil_div(V, chunk), chunk};
}

// The Tokens backward's dL/dx pass: blocks of (kWarp, kRows) threads, each a tile of
// kWarp * vec columns by a chunk of rows; block b is tile b % tiles of chunk b / tiles. Enough
// blocks to fill every SM a few times over; each chunk of rows is one row of the affine's
// partial column sums, so not more.
struct GradInputGrid {
  int64_t tiles, chunks, rows_per_chunk;
};
inline GradInputGrid grad_input_grid(int64_t V, int64_t D, int vec, int64_t sms) {
  const int64_t tiles = ceil_div(D / vec, kWarp);
  const int64_t target = 8 * sms;
  const int64_t chunks =
      std::min(std::max<int64_t>(1, ceil_div(target, tiles)), ceil_div(V, kRows));
  const int64_t rows_per_chunk = ceil_div(V, chunks);
  return {tiles, ceil_div(V, rows_per_chunk), rows_per_chunk};
}

// Chunk `chunk`'s rows [r0, r1).
struct RowRange {
  int64_t r0, r1;
};
NORMEXP_HOST_DEVICE inline RowRange chunk_rows(int64_t chunk, int64_t rows_per_chunk, int64_t V) {
  const int64_t r0 = chunk * rows_per_chunk;
  return {r0, r0 + rows_per_chunk < V ? r0 + rows_per_chunk : V};
}

}  // namespace normexp::nn::cuda_impl
