#pragma once
// Every fuzz target defines LLVMFuzzerTestOneInput. Built with NORMEXP_FUZZ=ON (clang,
// -fsanitize=fuzzer,address,undefined) it is a libFuzzer binary (bench/fuzz.sh runs them);
// otherwise corpus_runner.cpp gives it a main() that replays fuzz/corpus/<target>/ (a ctest).
//
// A target may throw normexp's own errors (ConfigError, RunError): those are the answers to
// bad input. Anything else (another exception, a crash, a sanitizer report, a hang) is a bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace normexp::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace normexp::fuzz
