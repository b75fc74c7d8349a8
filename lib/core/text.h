#pragma once
// Small string helpers shared by the floors above (config suggestions, file names).

#include <string>
#include <string_view>

namespace normexp {

// `s` with ASCII letters lowered and every other byte as it is (UTF-8 passes unchanged):
// for comparing names and file extensions whatever their case.
inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

}  // namespace normexp
