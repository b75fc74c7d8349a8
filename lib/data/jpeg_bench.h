#pragma once
// `normexp data bench-jpeg`: how fast the JPEG loader decodes and augments, on generated
// JPEGs of ImageNet's size distribution, with 1 worker (per core) and with more.

#include <cstdint>
#include <filesystem>
#include <vector>

namespace normexp::data {

struct JpegBenchOptions {
  std::filesystem::path dir;  // where the generated JPEGs go (created; left for reuse)
  int64_t images = 512;
  int width = 400, height = 350;  // mean size; each image varies by up to +-30 %
  int quality = 90;
  int64_t batch = 256;
  std::vector<int> workers{1, 2};
  uint64_t seed = 0;
};

struct JpegBenchRow {
  int workers = 0;
  bool train = true;  // random-resized crop (else resize 256 + centre crop)
  double images_per_s = 0;
  int64_t images = 0;
};

struct JpegBenchResult {
  double mean_bytes = 0, mean_width = 0, mean_height = 0;
  std::vector<JpegBenchRow> rows;
};

// Writes the images (unless `dir` already holds that many from an earlier call) and times one
// pass of a JpegLoader over them per worker count and mode, on the CPU.
JpegBenchResult bench_jpeg_loader(const JpegBenchOptions& opt);

}  // namespace normexp::data
