#pragma once
// A minimal PNG writer (8-bit RGB or grey, deflate "stored" blocks, no compression): enough for
// small preview images without an image library, so `normexp data preview` works on every
// build. Torch-free.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace normexp {

// `pixels` row-major, `channels` (1 or 3) interleaved values per pixel, width*height*channels
// bytes. Returns the bytes of the PNG file.
std::string encode_png(const std::vector<std::uint8_t>& pixels, int width, int height,
                       int channels);
// encode_png, written atomically (RunError on failure).
void write_png(const std::filesystem::path& path, const std::vector<std::uint8_t>& pixels,
               int width, int height, int channels);

// Checksums the format needs (exposed for tests): CRC-32 (ISO 3309, as PNG chunks use) and
// Adler-32 (zlib stream trailer).
std::uint32_t crc32(const std::string& bytes);
std::uint32_t adler32(const std::string& bytes);

}  // namespace normexp
