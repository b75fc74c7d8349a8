#pragma once
// `normexp data bench-jpeg`: how fast the JPEG loader decodes and augments, on generated
// JPEGs of ImageNet's size distribution, with 1 worker (per core) and with more.

#include <cstdint>
#include <filesystem>
#include <functional>
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
  // Called with each row as soon as it is timed, so that a run stopped by a deadline still
  // shows the rows it finished.
  std::function<void(const struct JpegBenchRow&)> on_row;
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

// Where the images of these options go: `dir`/bench/<width>x<height>_q<quality>_seed<seed>/c0,
// one folder per recipe, so that another --width or --quality never reuses other images.
std::filesystem::path jpeg_bench_folder(const JpegBenchOptions& opt);

// Writes the images the folder lacks (atomically: an interrupted call leaves no truncated
// JPEG to be reused) and times one pass of a JpegLoader over them per worker count and mode,
// on the CPU. The mean sizes are read back from the files. Throws RunError naming the option
// for a non-positive count or size, or a quality outside 1..100.
JpegBenchResult bench_jpeg_loader(const JpegBenchOptions& opt);

}  // namespace normexp::data
