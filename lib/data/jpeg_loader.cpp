#include "data/jpeg_loader.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "core/error.h"
#include "core/fs.h"
#include "data/jpeg.h"

namespace normexp::data {

namespace {
// splitmix64 (Steele et al. 2014): a tiny generator whose stream is fixed by its seed, so an
// image's augmentation depends only on (epoch seed, position), not on which thread draws it.
struct SplitMix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) {  // [lo, hi)
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
  }
  int64_t integer(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

uint64_t image_seed(uint64_t epoch_seed, int64_t position) {
  SplitMix m{epoch_seed ^ (static_cast<uint64_t>(position) * 0xD1B54A32D192ED03ull)};
  return m.next();
}

constexpr int kWarnSkipped = 10;  // files named in warnings before only counting
}  // namespace

CropBox draw_crop(int width, int height, const JpegAugment& a, uint64_t seed) {
  CropBox box;
  const double W = width, H = height;
  if (!a.train) {
    // Resize the shorter side to `resize`, then the central size x size: in the original's
    // pixels a square of side size * short / resize.
    const double side = a.size * std::min(W, H) / a.resize;
    box.w = box.h = side;
    box.x0 = (W - side) / 2;
    box.y0 = (H - side) / 2;
    return box;
  }
  SplitMix rng{seed};
  const double area = W * H;
  const double log_lo = std::log(a.ratio_min), log_hi = std::log(a.ratio_max);
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * rng.uniform(a.scale_min, a.scale_max);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t w = std::llround(std::sqrt(target * aspect));
    const int64_t h = std::llround(std::sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      box.y0 = static_cast<double>(rng.integer(0, height - h));
      box.x0 = static_cast<double>(rng.integer(0, width - w));
      box.w = static_cast<double>(w);
      box.h = static_cast<double>(h);
      found = true;
    }
  }
  if (!found) {  // the whole image, cut to the nearest allowed aspect ratio, centred
    const double ratio = W / H;
    box.w = W;
    box.h = H;
    if (ratio < a.ratio_min) box.h = std::llround(W / a.ratio_min);
    if (ratio > a.ratio_max) box.w = std::llround(H * a.ratio_max);
    box.x0 = std::floor((W - box.w) / 2);
    box.y0 = std::floor((H - box.h) / 2);
  }
  box.flip = rng.uniform(0, 1) < 0.5;
  return box;
}

bool load_augmented(const std::string& path, const JpegAugment& augment, uint64_t seed,
                    unsigned char* dst, std::string& error) {
  const std::string file = read_file(path);  // RunError naming the path (a moved dataset)
  const auto* bytes = reinterpret_cast<const unsigned char*>(file.data());
  JpegInfo info;
  if (!read_jpeg_header(bytes, file.size(), info)) {
    error = "not a JPEG (no readable JPEG header)";
    return false;
  }
  const CropBox box = draw_crop(info.width, info.height, augment, seed);
  // Decode at the smallest scale that keeps the box at least size x size pixels.
  const int min_w = static_cast<int>(std::ceil(augment.size * info.width / box.w));
  const int min_h = static_cast<int>(std::ceil(augment.size * info.height / box.h));
  RgbImage image;
  if (!decode_jpeg(bytes, file.size(), info, min_w, min_h, image, error)) return false;
  const double sx = static_cast<double>(image.width) / info.width;
  const double sy = static_cast<double>(image.height) / info.height;
  resample_box(image, box.x0 * sx, box.y0 * sy, box.w * sx, box.h * sy, augment.size, box.flip,
               dst);
  return true;
}

JpegLoader::JpegLoader(std::shared_ptr<const ImageFiles> files, JpegLoaderOptions options)
    : files_(std::move(files)), options_(std::move(options)) {
  if (!built_with_turbojpeg())
    throw RunError("this normexp was built without libjpeg-turbo, which JPEG datasets need: "
                   "install Debian's libturbojpeg0-dev (scripts/setup.sh does) and rebuild");
  TORCH_CHECK(options_.batch_size > 0, "JpegLoader: batch size must be > 0");
  plan_.n = files_->size();
  plan_.batch_size = options_.batch_size;
  plan_.drop_last = options_.drop_last;
  int workers = options_.workers > 0 ? options_.workers
                                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  depth_ = options_.prefetch > 0 ? options_.prefetch : 2 * workers;
  epoch_ = std::make_shared<const Epoch>();
  for (int w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
}

JpegLoader::~JpegLoader() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void JpegLoader::restart_locked(std::shared_ptr<const Epoch> epoch) {
  ++generation_;
  ready_.clear();
  next_ = want_ = 0;
  active_ = false;
  if (epoch) epoch_ = std::move(epoch);
}

void JpegLoader::new_epoch() {
  auto epoch = std::make_shared<Epoch>();
  if (options_.shuffle) {
    at::Tensor perm = shuffled_order(c10::Device(c10::kCPU));
    at::Tensor seed = torch::randint(std::numeric_limits<int64_t>::max(), {1},
                                     torch::TensorOptions().dtype(torch::kLong));
    order_ = torch::cat({perm, seed});
    set_order(order_);
    return;
  }
  std::lock_guard<std::mutex> lk(mu_);
  restart_locked(std::move(epoch));
}

void JpegLoader::set_order(at::Tensor order) {
  order_ = order.to(torch::kCPU).contiguous();
  TORCH_CHECK(order_.dim() == 1 && order_.numel() == plan_.n + 1,
              "JpegLoader: an epoch state of ", order_.numel(), " entries for ", plan_.n,
              " images (a checkpoint of another dataset size?)");
  auto epoch = std::make_shared<Epoch>();
  const int64_t* v = order_.data_ptr<int64_t>();
  epoch->order.assign(v, v + plan_.n);
  epoch->seed = static_cast<uint64_t>(v[plan_.n]);
  std::lock_guard<std::mutex> lk(mu_);
  restart_locked(std::move(epoch));
}

int64_t JpegLoader::skipped() const {
  std::lock_guard<std::mutex> lk(mu_);
  return skipped_;
}

JpegLoader::Ready JpegLoader::produce(int64_t begin, int64_t end, const Epoch& epoch) {
  const int64_t s = options_.augment.size, count = end - begin;
  auto opts = torch::TensorOptions().dtype(torch::kByte);
  if (options_.device.is_cuda()) opts = opts.pinned_memory(true);
  Ready out;
  out.images = torch::empty({count, 3, s, s}, opts);
  // Labels pinned too: a copy from pageable memory would not be asynchronous.
  out.labels = torch::empty({count}, opts.dtype(torch::kLong));
  unsigned char* dst = out.images.data_ptr<unsigned char>();
  int64_t* labels = out.labels.data_ptr<int64_t>();
  int64_t kept = 0;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t idx = epoch.order.empty() ? p : epoch.order[p];
    std::string error;
    const std::string& path = files_->paths[idx];
    if (load_augmented(path, options_.augment, image_seed(epoch.seed, p), dst + kept * 3 * s * s,
                       error)) {
      labels[kept++] = files_->labels[idx];
      continue;
    }
    int64_t n_skipped;
    {
      std::lock_guard<std::mutex> lk(mu_);
      n_skipped = ++skipped_;
    }
    if (n_skipped <= kWarnSkipped)
      spdlog::warn("{}: skipped, libjpeg cannot decode it ({}){}", path, error,
                   n_skipped == kWarnSkipped ? "; further skipped files are only counted" : "");
  }
  if (kept < count) {
    out.images = out.images.narrow(0, 0, kept);
    out.labels = out.labels.narrow(0, 0, kept);
  }
  return out;
}

void JpegLoader::work() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] {
      return stop_ || (active_ && next_ < plan_.num_batches() && next_ < want_ + depth_);
    });
    if (stop_) return;
    const int64_t i = next_++;
    const uint64_t generation = generation_;
    const auto epoch = epoch_;
    const auto [begin, end] = plan_.part(i);
    lk.unlock();
    Ready r;
    std::exception_ptr error;
    try {
      r = produce(begin, end, *epoch);
    } catch (...) {
      error = std::current_exception();
    }
    lk.lock();
    if (generation != generation_) continue;  // the stream restarted meanwhile
    if (error && !error_) error_ = error;
    if (!error) ready_[i] = std::move(r);
    cv_.notify_all();
  }
}

std::pair<at::Tensor, at::Tensor> JpegLoader::batch(int64_t i) {
  TORCH_CHECK(i >= 0 && i < plan_.num_batches(), "JpegLoader: batch ", i, " out of range");
  Ready r;
  {
    std::unique_lock<std::mutex> lk(mu_);
    const bool coming = ready_.count(i) || (i >= want_ && i < next_);
    if (!coming) {  // not in the stream: restart it at i (random access, a resume)
      ++generation_;
      ready_.clear();
      next_ = i;
    }
    want_ = i;
    active_ = true;
    cv_.notify_all();
    cv_.wait(lk, [&] { return ready_.count(i) || error_; });
    if (error_) std::rethrow_exception(error_);
    r = std::move(ready_[i]);
    ready_.erase(ready_.begin(), ready_.upper_bound(i));
    want_ = i + 1;
    cv_.notify_all();
  }
  if (options_.device.is_cpu()) return {r.images, r.labels};
  return {r.images.to(options_.device, /*non_blocking=*/true),
          r.labels.to(options_.device, /*non_blocking=*/true)};
}

}  // namespace normexp::data
