#include "core/png.h"

#include <zlib.h>

#include <stdexcept>

#include "core/fs.h"

namespace normexp {

namespace {

void put_u32(std::string& out, std::uint32_t v) {  // big-endian, as PNG wants
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFFU));
}

// length, type, data, CRC-32 of type + data (PNG spec §5.3).
void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  std::string body(type, 4);
  body += data;
  out += body;
  put_u32(out, static_cast<std::uint32_t>(
                   ::crc32(0L, reinterpret_cast<const Bytef*>(body.data()),
                           static_cast<uInt>(body.size()))));
}

// A zlib stream (what IDAT holds) of `raw` at zlib's default level.
std::string zlib_compress(const std::string& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string out(size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                           reinterpret_cast<const Bytef*>(raw.data()),
                           static_cast<uLong>(raw.size()), Z_DEFAULT_COMPRESSION);
  if (rc != Z_OK) throw std::runtime_error("encode_png: zlib compress2 failed (" +
                                           std::to_string(rc) + ")");
  out.resize(size);
  return out;
}

}  // namespace

std::string encode_png(const std::vector<std::uint8_t>& pixels, int width, int height,
                       int channels) {
  if (width <= 0 || height <= 0 || (channels != 1 && channels != 3))
    throw std::invalid_argument("encode_png: need width, height > 0 and 1 or 3 channels");
  const size_t row = static_cast<size_t>(width) * channels;
  if (pixels.size() != row * height)
    throw std::invalid_argument("encode_png: pixel buffer does not match the size");
  // Scanlines, each with filter type 0 (none).
  std::string raw;
  raw.reserve((row + 1) * height);
  for (int y = 0; y < height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(pixels.data() + y * row), row);
  }

  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_u32(ihdr, static_cast<std::uint32_t>(width));
  put_u32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back('\x08');                           // bit depth
  ihdr.push_back(channels == 3 ? '\x02' : '\x00');  // colour type: truecolour or grey
  ihdr.append(3, '\0');                             // compression, filter, interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", zlib_compress(raw));
  put_chunk(out, "IEND", "");
  return out;
}

void write_png(const std::filesystem::path& path, const std::vector<std::uint8_t>& pixels,
               int width, int height, int channels) {
  write_file_atomic(path, encode_png(pixels, width, height, channels));
}

}  // namespace normexp
