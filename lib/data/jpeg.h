#pragma once
// JPEG decoding for the ImageNet loader and encoding for generated test/benchmark images,
// through libjpeg-turbo's TurboJPEG API (Debian: libturbojpeg0-dev), plus the resampling step
// of the standard ImageNet augmentations.
//
// Torch-free on purpose: the loader's worker threads call these on raw buffers, so no ATen op
// (and no intra-op thread pool) runs inside a worker.

#include <cstdint>
#include <string>
#include <vector>

namespace normexp::data {

// Whether this build has libjpeg-turbo (else everything below throws RunError saying how).
bool built_with_turbojpeg();

// Width and height from a JPEG's header, or false when the bytes are not a JPEG TurboJPEG can
// read (a PNG renamed .JPEG, a text file). Cheap: no decoding.
struct JpegInfo {
  int width = 0, height = 0;
  bool cmyk = false;  // CMYK/YCCK (ImageNet has 22): decoded through CMYK, see decode_jpeg
};
bool read_jpeg_header(const unsigned char* data, size_t size, JpegInfo& info);

// Whether the bytes end with the JPEG end-of-image marker (FF D9, allowing trailing padding of
// zeros): the cheap test for a truncated file that `data prepare imagenet` runs on every image.
bool has_jpeg_end_marker(const unsigned char* data, size_t size);

// An 8-bit RGB image, rows of width*3 bytes.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<unsigned char> pixels;
};

// Decodes to RGB at the smallest DCT scale factor (libjpeg-turbo's scaled decoding: 1/8, 2/8,
// ... 8/8) that still gives at least `min_width` x `min_height` pixels (0: full size), which is
// several times faster than a full decode when the crop is a small part of a large image.
// Greyscale becomes RGB; CMYK and YCCK (Adobe's inverted CMYK, as ImageNet's are) become RGB as
// R = C·K/255 etc. Returns false with `error` set for data libjpeg cannot decode (truncated,
// corrupt); warnings (a few bad bytes) also count as failures, so no image is half grey.
bool decode_jpeg(const unsigned char* data, size_t size, int min_width, int min_height,
                 RgbImage& out, std::string& error);
// The same with the header already read by read_jpeg_header (the loader reads it first to
// draw the crop; this spares parsing it twice per image).
bool decode_jpeg(const unsigned char* data, size_t size, const JpegInfo& info, int min_width,
                 int min_height, RgbImage& out, std::string& error);

// Encodes RGB pixels at `quality` (1..100) as a colour JPEG with 4:2:0 subsampling (as most
// camera JPEGs), a greyscale JPEG (luminance only), or a CMYK (YCCK) JPEG in Adobe's inverted
// convention with C, M, Y = R, G, B and K = 255 — the kinds ImageNet holds; the last two
// exist for tests of the decoder.
enum class JpegKind { Color, Gray, Cmyk };
std::vector<unsigned char> encode_jpeg(const RgbImage& image, int quality,
                                       JpegKind kind = JpegKind::Color);

// The box [x0, x0 + w) x [y0, y0 + h) of `src` (in pixels, fractional allowed) resampled to
// `out_size` x `out_size`, written as planar uint8 (3, out_size, out_size) into `dst`,
// mirrored left-right when `flip`. The filter is the triangle (bilinear) filter widened by the
// scale factor when shrinking, i.e. antialiased bilinear as PIL's resize, which is what
// torchvision's RandomResizedCrop and Resize apply to ImageNet's PIL images; like them (crop,
// then resize) it reads no pixel outside the box.
void resample_box(const RgbImage& src, double x0, double y0, double w, double h, int out_size,
                  bool flip, unsigned char* dst);

}  // namespace normexp::data
