#pragma once
// A small PNG writer (8-bit RGB or grey, one IDAT chunk, zlib's deflate and CRC-32): enough
// for preview images without an image library, so `normexp data preview` works on every
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

}  // namespace normexp
