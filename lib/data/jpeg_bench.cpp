#include "data/jpeg_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <random>

#include <fmt/core.h>

#include "core/error.h"
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
}  // namespace

JpegBenchResult bench_jpeg_loader(const JpegBenchOptions& opt) {
  const fs::path cls = opt.dir / "bench" / "c0";
  fs::create_directories(cls);
  JpegBenchResult result;
  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> vary(0.7, 1.3);
  auto files = std::make_shared<ImageFiles>();
  files->classes = {"c0"};
  double bytes = 0, width = 0, height = 0;
  for (int64_t i = 0; i < opt.images; ++i) {
    const fs::path path = cls / fmt::format("img_{:06d}.JPEG", i);
    const int w = static_cast<int>(opt.width * vary(rng)), h = static_cast<int>(opt.height * vary(rng));
    if (!fs::exists(path)) {
      const auto jpeg = encode_jpeg(photo_like(w, h, rng), opt.quality);
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    }
    bytes += static_cast<double>(fs::file_size(path));
    width += w;
    height += h;
    files->paths.push_back(path.string());
    files->labels.push_back(0);
  }
  result.mean_bytes = bytes / opt.images;
  result.mean_width = width / opt.images;
  result.mean_height = height / opt.images;
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
      result.rows.push_back({workers, train, n / s, n});
    }
  return result;
}

}  // namespace normexp::data
