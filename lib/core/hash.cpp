#include "core/hash.h"

#include <fmt/format.h>

namespace normexp {

std::uint64_t fnv1a64(std::string_view data) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string fnv1a64_hex(std::string_view data) {
  return fmt::format("{:016x}", fnv1a64(data));
}

}  // namespace normexp
