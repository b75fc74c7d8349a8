#include "data/jpeg_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string_view>

#include <fmt/core.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/image_folder.h"
#include "data/jpeg.h"
#include "data/jpeg_loader.h"

namespace normexp::data {

namespace fs = std::filesystem;

namespace {
// A photo-like image: smooth colour fields (which dominate real photos' spectra) plus
// pixel noise (texture), so file sizes and decode times are in the range of ImageNet's
// (~110 KB at quality ~90), unlike flat or pure-noise images.
RgbImage photo_like(int w, int h, std::mt19937_64& rng) {
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  std::uniform_real_distribution<double> u(0, 1);
  std::normal_distribution<double> noise(0, 40);
  double fx[3], fy[3], ph[3];
  for (int c = 0; c < 3; ++c) {
    fx[c] = 2 + 10 * u(rng);
    fy[c] = 2 + 10 * u(rng);
    ph[c] = 6.28 * u(rng);
  }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 80 * std::sin(fx[c] * x / w * 6.28 + ph[c]) *
                                   std::cos(fy[c] * y / h * 6.28) +
                         noise(rng);
        img.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] =
            static_cast<unsigned char>(std::clamp(v, 0.0, 255.0));
      }
  return img;
}

void check(const JpegBenchOptions& opt) {
  const auto positive = [](const char* what, int64_t v) {
    if (v < 1)
      throw RunError(fmt::format("data bench-jpeg: {} must be at least 1 (got {})", what, v));
  };
  positive("--images", opt.images);
  positive("--batch", opt.batch);
  if (opt.width < 8 || opt.height < 8)
    throw RunError(fmt::format("data bench-jpeg: --width and --height must be at least 8 "
                               "(got {}x{})", opt.width, opt.height));
  if (opt.quality < 1 || opt.quality > 100)
    throw RunError(
        fmt::format("data bench-jpeg: --quality must be in 1..100 (got {})", opt.quality));
  if (opt.workers.empty()) throw RunError("data bench-jpeg: no --workers count to time");
  for (const int w : opt.workers) positive("each --workers count", w);
}
}  // namespace

fs::path jpeg_bench_folder(const JpegBenchOptions& opt) {
  return opt.dir / "bench" /
         fmt::format("{}x{}_q{}_seed{}", opt.width, opt.height, opt.quality, opt.seed);
}

JpegBenchResult bench_jpeg_loader(const JpegBenchOptions& opt) {
  check(opt);
  // One folder per image recipe, and image i a function of (recipe, i) alone: a folder left by
  // an earlier call holds exactly the images this call would write, so reusing them (or adding
  // to them for a larger --images) never times other images than the options describe.
  const fs::path cls = jpeg_bench_folder(opt) / "c0";
  fs::create_directories(cls);
  auto files = std::make_shared<ImageFiles>();
  files->classes = {"c0"};
  JpegBenchResult result;
  double bytes = 0, width = 0, height = 0;
  for (int64_t i = 0; i < opt.images; ++i) {
    const fs::path path = cls / fmt::format("img_{:06d}.JPEG", i);
    if (!fs::exists(path)) {
      std::mt19937_64 rng(opt.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(i));
      std::uniform_real_distribution<double> vary(0.7, 1.3);
      const int w = static_cast<int>(opt.width * vary(rng));
      const int h = static_cast<int>(opt.height * vary(rng));
      const auto jpeg = encode_jpeg(photo_like(w, h, rng), opt.quality);
      write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(jpeg.data()),
                                               jpeg.size()));
    }
    // The sizes reported are those of the files timed, read back from them.
    const std::string data = read_file(path);
    JpegInfo info;
    if (!read_jpeg_header(reinterpret_cast<const unsigned char*>(data.data()), data.size(), info))
      throw RunError(fmt::format("data bench-jpeg: {} is not a JPEG (delete it to have it "
                                 "written anew)", path.string()));
    bytes += static_cast<double>(data.size());
    width += info.width;
    height += info.height;
    files->paths.push_back(path.string());
    files->labels.push_back(0);
  }
  result.mean_bytes = bytes / static_cast<double>(opt.images);
  result.mean_width = width / static_cast<double>(opt.images);
  result.mean_height = height / static_cast<double>(opt.images);
  for (const bool train : {true, false})
    for (const int workers : opt.workers) {
      JpegLoaderOptions o;
      o.batch_size = opt.batch;
      o.shuffle = train;
      o.augment.train = train;
      o.workers = workers;
      JpegLoader loader(files, o);
      loader.new_epoch();
      const auto t0 = std::chrono::steady_clock::now();
      int64_t n = 0;
      for (int64_t b = 0; b < loader.num_batches(); ++b) n += loader.batch(b).second.size(0);
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      result.rows.push_back({workers, train, static_cast<double>(n) / s, n});
      if (opt.on_row) opt.on_row(result.rows.back());
    }
  return result;
}

}  // namespace normexp::data
