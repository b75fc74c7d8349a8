// The launch geometry of BCN's CUDA kernels (nn/bcn_cuda_launch.h), checked on the CPU: the
// kernels call these same functions to decide which warp reads which values, so a split that
// skips a pack or reads one twice (a wrong norm or gradient on the GPU) fails here, in CI,
// without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/bcn_cuda_launch.h"

namespace normexp::nn::cuda_impl {
namespace {

// Feature sizes: a token (ViT-B/16, CIFAR-ViT), odd and tiny ones, and whole maps
// (vector: sample) of ResNet stages: 256 x 56 x 56, 2048 x 7 x 7, 64 x 32 x 32.
const int64_t kDims[] = {1, 3, 7, 31, 32, 33, 100, 192, 768, 1000, 65536, 100352, 802816};
const int64_t kCounts[] = {1, 2, 7, 8, 64, 128, 1040, 3152};  // vectors V
const int64_t kSms[] = {1, 4, 108, 132};                     // multiprocessors (H200: 132)
const int kVecs[] = {1, 2, 4, 8};  // values per 16-byte load: double, float, half/bf16

// fn(V, D, vec, sms) over every geometry of the lists above the kernels can meet: 16-byte
// loads only where they divide D. Each call is traced with its geometry.
template <typename Fn>
void for_each_geometry(const Fn& fn) {
  for (const int64_t D : kDims)
    for (const int vec : kVecs) {
      if (D % vec != 0) continue;
      for (const int64_t V : kCounts)
        for (const int64_t sms : kSms) {
          SCOPED_TRACE("V=" + std::to_string(V) + " D=" + std::to_string(D) +
                       " vec=" + std::to_string(vec) + " sms=" + std::to_string(sms));
          fn(V, D, vec, sms);
        }
    }
}

SegmentPacks packs_of(int vec, int64_t u, const Segments& sg, int64_t D) {
  switch (vec) {
    case 1:
      return segment_packs<1>(u, sg.S, sg.L, D);
    case 2:
      return segment_packs<2>(u, sg.S, sg.L, D);
    case 4:
      return segment_packs<4>(u, sg.S, sg.L, D);
    default:
      return segment_packs<8>(u, sg.S, sg.L, D);
  }
}

// chunk_rows of chunks 0 .. count - 1 are non-empty, contiguous and end at V.
void expect_chunks_cover(int64_t count, int64_t per_chunk, int64_t V) {
  int64_t next = 0;
  for (int64_t chunk = 0; chunk < count; ++chunk) {
    const RowRange r = chunk_rows(chunk, per_chunk, V);
    ASSERT_EQ(r.r0, next) << "chunk " << chunk;
    ASSERT_LT(r.r0, r.r1) << "chunk " << chunk << " is empty";
    next = r.r1;
  }
  EXPECT_EQ(next, V);
}

// Every pack of every vector is read by exactly one segment, and each segment's warp has work.
TEST(BcnCudaLaunch, TokensSegmentsReadEveryPackOnce) {
  int checked = 0;
  for_each_geometry([&](int64_t V, int64_t D, int vec, int64_t sms) {
    if (V * D > (int64_t{1} << 25)) return;
    const Segments sg = tokens_segments(V, D, vec, sms);
    ASSERT_GE(sg.S, 1);
    ASSERT_EQ(sg.L % vec, 0);
    const int64_t packs = D / vec;
    std::vector<int> reads(static_cast<size_t>(V * packs), 0);
    for (int64_t u = 0; u < V * sg.S; ++u) {
      const SegmentPacks p = packs_of(vec, u, sg, D);
      ASSERT_LT(p.v, V);
      ASSERT_LT(p.c0, p.c1) << "segment " << u << " is empty";
      ASSERT_LE(p.c1, packs);
      for (int64_t c = p.c0; c < p.c1; ++c) ++reads[static_cast<size_t>(p.v * packs + c)];
    }
    for (size_t i = 0; i < reads.size(); ++i)
      ASSERT_EQ(reads[i], 1) << "vector " << i / packs << ", pack " << i % packs;
    ++checked;
  });
  EXPECT_GT(checked, 300);
}

// Few long vectors are spread over the device; many short ones stay one warp each, and no
// lane of a split vector makes fewer than 8 loads (the partial sums must stay cheap).
TEST(BcnCudaLaunch, TokensSegmentsFillTheDeviceWithoutTinySegments) {
  for_each_geometry([](int64_t V, int64_t D, int vec, int64_t sms) {
    const Segments sg = tokens_segments(V, D, vec, sms);
    const int64_t most = std::max<int64_t>(1, D / (kWarp * vec * 8));
    if (sg.S > 1) EXPECT_GE(sg.L / vec, 8 * kWarp);
    EXPECT_LE(sg.S, most);
    // Half the ~16 warps an SM asked for, or every segment a vector can take.
    EXPECT_GE(2 * V * sg.S, std::min(16 * sms, V * most));
  });
  // The whole-map case this split exists for: 8 ResNet maps of 256 x 56 x 56 in float.
  const Segments maps = tokens_segments(8, 802816, 4, 132);
  EXPECT_GE(8 * maps.S, 132 * 8);
  // ViT-B/16 tokens: 16 x 197 vectors of 768, one warp each.
  EXPECT_EQ(tokens_segments(16 * 197, 768, 4, 132).S, 1);
}

// The batch statistics' blocks take contiguous chunks that cover the V magnitudes once.
TEST(BcnCudaLaunch, BatchSplitCoversEveryMagnitudeOnce) {
  for (const int64_t V : {int64_t{1}, int64_t{2}, int64_t{1023}, int64_t{1024}, int64_t{1025},
                          int64_t{4 * kThreads * kMaxPartials - 1},
                          int64_t{4 * kThreads * kMaxPartials + 1}, int64_t{8 * 56 * 56 * 32},
                          int64_t{10000019}}) {
    SCOPED_TRACE("V=" + std::to_string(V));
    const BatchSplit split = batch_split(V);
    ASSERT_GE(split.blocks, 1);
    ASSERT_LE(split.blocks, kMaxPartials);
    expect_chunks_cover(split.blocks, split.chunk, V);
  }
}

// dL/dx's blocks: tiles cover the D columns (the last tile's extra lanes are masked by
// c < D / vec in the kernel) and chunks cover the V rows once, each chunk at least a
// block's kRows rows where V allows (no more chunks than ceil(V / kRows)).
TEST(BcnCudaLaunch, GradInputGridCoversEveryRowAndColumnOnce) {
  for_each_geometry([](int64_t V, int64_t D, int vec, int64_t sms) {
    const GradInputGrid g = grad_input_grid(V, D, vec, sms);
    const int64_t packs = D / vec;
    EXPECT_GE(g.tiles * kWarp, packs);
    EXPECT_LT((g.tiles - 1) * kWarp, packs);
    expect_chunks_cover(g.chunks, g.rows_per_chunk, V);
    EXPECT_LE(g.chunks, ceil_div(V, kRows));
    // Enough blocks for 8 an SM where the rows allow it (half of that, after rounding).
    EXPECT_GE(2 * g.tiles * g.chunks, std::min(8 * sms, g.tiles * ceil_div(V, kRows)));
  });
}

}  // namespace
}  // namespace normexp::nn::cuda_impl
