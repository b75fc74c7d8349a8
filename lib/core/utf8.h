#pragma once
// UTF-8 validation for text that ends up in JSON and file names (config values, keys): a
// string that is not UTF-8 is refused where it was written, not later by a JSON writer.

#include <cstddef>
#include <optional>
#include <string_view>

namespace normexp {

// The byte offset of the first byte that does not start a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF); nullopt when `text`
// is valid UTF-8.
std::optional<std::size_t> invalid_utf8_at(std::string_view text);

}  // namespace normexp
