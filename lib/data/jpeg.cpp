#include "data/jpeg.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include <fmt/core.h>

#include "core/error.h"

#ifdef NORMEXP_WITH_TURBOJPEG
#include <turbojpeg.h>
#endif

namespace normexp::data {

#ifdef NORMEXP_WITH_TURBOJPEG

bool built_with_turbojpeg() { return true; }

namespace {
// One decompressor per thread: a handle is not thread-safe, creating one per image costs a
// malloc storm, and the loader's workers live for the whole run. After a failure the handle
// is replaced: libjpeg-turbo 2.1 can leave a handle that failed mid-stream unable to read the
// next (valid) image.
struct Decompressor {
  tjhandle h = tjInitDecompress();
  ~Decompressor() {
    if (h) tjDestroy(h);
  }
  void renew() {
    if (h) tjDestroy(h);
    h = tjInitDecompress();
  }
};
Decompressor& thread_decompressor() {
  thread_local Decompressor d;
  if (!d.h) throw RunError("libjpeg-turbo: cannot create a decompressor");
  return d;
}
}  // namespace

bool read_jpeg_header(const unsigned char* data, size_t size, JpegInfo& info) {
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
  Decompressor& d = thread_decompressor();
  if (tjDecompressHeader3(d.h, data, static_cast<unsigned long>(size), &w, &h, &subsamp,
                          &colorspace) != 0) {
    d.renew();
    return false;
  }
  info.width = w;
  info.height = h;
  info.cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  return w > 0 && h > 0;
}

bool decode_jpeg(const unsigned char* data, size_t size, int min_width, int min_height,
                 RgbImage& out, std::string& error) {
  JpegInfo info;
  if (!read_jpeg_header(data, size, info)) {
    error = "not a JPEG (no readable JPEG header)";
    return false;
  }
  return decode_jpeg(data, size, info, min_width, min_height, out, error);
}

bool decode_jpeg(const unsigned char* data, size_t size, const JpegInfo& info, int min_width,
                 int min_height, RgbImage& out, std::string& error) {
  if (min_width <= 0 && min_height <= 0) min_width = info.width;  // full size
  // The smallest scale that keeps the requested size (factors come largest first or not:
  // search them all).
  int n_factors = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&n_factors);
  tjscalingfactor best{1, 1};
  int best_w = info.width;
  for (int i = 0; i < n_factors; ++i) {
    const tjscalingfactor f = factors[i];
    if (f.num > f.denom) continue;  // never upscale in the decoder
    const int w = TJSCALED(info.width, f), h = TJSCALED(info.height, f);
    if (w >= min_width && h >= min_height && w < best_w) {
      best = f;
      best_w = w;
    }
  }
  out.width = TJSCALED(info.width, best);
  out.height = TJSCALED(info.height, best);
  Decompressor& d = thread_decompressor();
  tjhandle h = d.h;
  const int flags = TJFLAG_STOPONWARNING;
  const unsigned long n = static_cast<unsigned long>(size);
  if (!info.cmyk) {
    out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
    if (tjDecompress2(h, data, n, out.pixels.data(), out.width, 0, out.height, TJPF_RGB, flags) ==
        0)
      return true;
  } else {
    // libjpeg has no CMYK -> RGB conversion: decode the inks and invert Adobe's convention.
    std::vector<unsigned char> cmyk(static_cast<size_t>(out.width) * out.height * 4);
    if (tjDecompress2(h, data, n, cmyk.data(), out.width, 0, out.height, TJPF_CMYK, flags) ==
        0) {
      out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
      for (size_t p = 0, q = 0; p < cmyk.size(); p += 4, q += 3) {
        const unsigned k = cmyk[p + 3];
        for (int c = 0; c < 3; ++c)
          out.pixels[q + c] = static_cast<unsigned char>((cmyk[p + c] * k + 127) / 255);
      }
      return true;
    }
  }
  error = tjGetErrorStr2(h);
  d.renew();
  return false;
}

std::vector<unsigned char> encode_jpeg(const RgbImage& image, int quality, JpegKind kind) {
  std::unique_ptr<void, int (*)(tjhandle)> h(tjInitCompress(), tjDestroy);
  if (!h) throw RunError("libjpeg-turbo: cannot create a compressor");
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const unsigned char* src = image.pixels.data();
  int format = TJPF_RGB, subsamp = kind == JpegKind::Gray ? TJSAMP_GRAY : TJSAMP_420;
  std::vector<unsigned char> cmyk;
  if (kind == JpegKind::Cmyk) {
    cmyk.resize(static_cast<size_t>(image.width) * image.height * 4);
    for (size_t p = 0, q = 0; q < image.pixels.size(); p += 4, q += 3) {
      std::copy(src + q, src + q + 3, cmyk.data() + p);
      cmyk[p + 3] = 255;
    }
    src = cmyk.data();
    format = TJPF_CMYK;
  }
  if (tjCompress2(h.get(), src, image.width, 0, image.height, format, &buf, &size, subsamp,
                  quality, 0) != 0)
    throw RunError(fmt::format("libjpeg-turbo cannot encode a {}x{} image: {}", image.width,
                               image.height, tjGetErrorStr2(h.get())));
  std::vector<unsigned char> bytes(buf, buf + size);
  tjFree(buf);
  return bytes;
}

#else

bool built_with_turbojpeg() { return false; }

namespace {
[[noreturn]] void no_turbojpeg() {
  throw RunError(
      "this normexp was built without libjpeg-turbo: install Debian's libturbojpeg0-dev "
      "(scripts/setup.sh does) and rebuild");
}
}  // namespace

bool read_jpeg_header(const unsigned char*, size_t, JpegInfo&) { no_turbojpeg(); }
bool decode_jpeg(const unsigned char*, size_t, int, int, RgbImage&, std::string&) {
  no_turbojpeg();
}
bool decode_jpeg(const unsigned char*, size_t, const JpegInfo&, int, int, RgbImage&,
                 std::string&) {
  no_turbojpeg();
}
std::vector<unsigned char> encode_jpeg(const RgbImage&, int, JpegKind) { no_turbojpeg(); }

#endif

bool has_jpeg_end_marker(const unsigned char* data, size_t size) {
  while (size > 2 && data[size - 1] == 0) --size;  // some encoders pad with zeros
  return size >= 4 && data[size - 2] == 0xFF && data[size - 1] == 0xD9;
}

namespace {
// For each output pixel, the first input index and the normalized weights of the triangle
// filter of radius max(1, scale) centred on the output pixel's centre mapped into the input.
struct Taps {
  std::vector<int> first;
  std::vector<std::vector<float>> weights;
};

Taps make_taps(double start, double length, int out_size, int in_size) {
  Taps taps;
  taps.first.resize(out_size);
  taps.weights.resize(out_size);
  const double scale = length / out_size;
  const double support = std::max(1.0, scale);
  // Only pixels inside the box: torchvision crops first, then resizes the crop, so the filter
  // never reaches the pixels around it.
  const int first = std::clamp(static_cast<int>(std::floor(start)), 0, in_size - 1);
  const int last = std::clamp(static_cast<int>(std::ceil(start + length)) - 1, first, in_size - 1);
  for (int o = 0; o < out_size; ++o) {
    const double centre = start + (o + 0.5) * scale;
    int lo = static_cast<int>(std::floor(centre - support));
    int hi = static_cast<int>(std::ceil(centre + support));
    lo = std::clamp(lo, first, last);
    hi = std::clamp(hi, first, last);
    std::vector<float>& w = taps.weights[o];
    double total = 0;
    for (int i = lo; i <= hi; ++i) {
      const double t = std::abs((i + 0.5 - centre) / support);
      const double v = t < 1 ? 1 - t : 0;
      w.push_back(static_cast<float>(v));
      total += v;
    }
    if (total <= 0) {  // a box entirely outside the image: nearest pixel
      w.assign(1, 1.0f);
      lo = std::clamp(static_cast<int>(centre), first, last);
      total = 1;
    }
    for (float& v : w) v = static_cast<float>(v / total);
    taps.first[o] = lo;
  }
  return taps;
}
}  // namespace

void resample_box(const RgbImage& src, double x0, double y0, double w, double h, int out_size,
                  bool flip, unsigned char* dst) {
  const Taps tx = make_taps(x0, w, out_size, src.width);
  const Taps ty = make_taps(y0, h, out_size, src.height);
  int row_lo = src.height, row_hi = -1;
  for (int o = 0; o < out_size; ++o) {
    row_lo = std::min(row_lo, ty.first[o]);
    row_hi = std::max(row_hi, ty.first[o] + static_cast<int>(ty.weights[o].size()) - 1);
  }
  // Horizontal pass over the rows the vertical taps touch: (rows, out_size, 3) floats.
  const int rows = row_hi - row_lo + 1;
  std::vector<float> tmp(static_cast<size_t>(rows) * out_size * 3);
  for (int r = 0; r < rows; ++r) {
    const unsigned char* line = src.pixels.data() + static_cast<size_t>(row_lo + r) * src.width * 3;
    float* t = tmp.data() + static_cast<size_t>(r) * out_size * 3;
    for (int o = 0; o < out_size; ++o) {
      const unsigned char* p = line + static_cast<size_t>(tx.first[o]) * 3;
      float a = 0, b = 0, c = 0;
      for (float wt : tx.weights[o]) {
        a += wt * p[0];
        b += wt * p[1];
        c += wt * p[2];
        p += 3;
      }
      t[o * 3] = a;
      t[o * 3 + 1] = b;
      t[o * 3 + 2] = c;
    }
  }
  // Vertical pass into planar (3, out, out), mirrored when flipping.
  const size_t plane = static_cast<size_t>(out_size) * out_size;
  std::vector<float> acc(static_cast<size_t>(out_size) * 3);
  for (int o = 0; o < out_size; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const int first = ty.first[o] - row_lo;
    for (size_t k = 0; k < ty.weights[o].size(); ++k) {
      const float wt = ty.weights[o][k];
      const float* t = tmp.data() + static_cast<size_t>(first + k) * out_size * 3;
      for (int i = 0; i < out_size * 3; ++i) acc[i] += wt * t[i];
    }
    for (int x = 0; x < out_size; ++x) {
      const int ox = flip ? out_size - 1 - x : x;
      for (int c = 0; c < 3; ++c) {
        const float v = std::clamp(acc[x * 3 + c] + 0.5f, 0.0f, 255.0f);
        dst[c * plane + static_cast<size_t>(o) * out_size + ox] = static_cast<unsigned char>(v);
      }
    }
  }
}

}  // namespace normexp::data
