#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace normexp {

// 64-bit FNV-1a; stable across platforms and versions (used for experiment hashes).
std::uint64_t fnv1a64(std::string_view data);
// 16 lowercase hex digits of fnv1a64(data).
std::string fnv1a64_hex(std::string_view data);

}  // namespace normexp
