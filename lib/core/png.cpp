#include "core/png.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "core/fs.h"

namespace normexp {

namespace {

// Reflected CRC-32 with polynomial 0xEDB88320 (PNG spec, Annex D), table built once.
const std::array<std::uint32_t, 256>& crc_table() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

void put_u32(std::string& out, std::uint32_t v) {  // big-endian, as PNG and zlib want
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFFU));
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<std::uint32_t>(data.size()));
  std::string body(type, 4);
  body += data;
  out += body;
  put_u32(out, crc32(body));
}

}  // namespace

std::uint32_t crc32(const std::string& bytes) {
  std::uint32_t c = 0xFFFFFFFFU;
  for (unsigned char b : bytes) c = crc_table()[(c ^ b) & 0xFFU] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

std::uint32_t adler32(const std::string& bytes) {
  constexpr std::uint32_t kMod = 65521;  // largest prime below 2^16 (RFC 1950)
  std::uint32_t a = 1, b = 0;
  for (unsigned char c : bytes) {
    a = (a + c) % kMod;
    b = (b + a) % kMod;
  }
  return (b << 16) | a;
}

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
  // zlib stream: header 0x78 0x01 (deflate, 32K window, check bits), stored blocks of at
  // most 65535 bytes (RFC 1951 §3.2.4), Adler-32 of the raw data.
  std::string z = "\x78\x01";
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + len == raw.size();
    z.push_back(last ? '\x01' : '\x00');
    const auto n = static_cast<std::uint16_t>(len);
    const auto nn = static_cast<std::uint16_t>(~n);
    z.push_back(static_cast<char>(n & 0xFF));
    z.push_back(static_cast<char>(n >> 8));
    z.push_back(static_cast<char>(nn & 0xFF));
    z.push_back(static_cast<char>(nn >> 8));
    z.append(raw, pos, len);
    pos += len;
  } while (pos < raw.size());
  put_u32(z, adler32(raw));

  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_u32(ihdr, static_cast<std::uint32_t>(width));
  put_u32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back('\x08');                           // bit depth
  ihdr.push_back(channels == 3 ? '\x02' : '\x00');  // colour type: truecolour or grey
  ihdr.append(3, '\0');                             // compression, filter, interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", "");
  return out;
}

void write_png(const std::filesystem::path& path, const std::vector<std::uint8_t>& pixels,
               int width, int height, int channels) {
  write_file_atomic(path, encode_png(pixels, width, height, channels));
}

}  // namespace normexp
