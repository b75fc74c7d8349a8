#pragma once
// Runs the normexp binary (NORMEXP_BINARY, set by tests/CMakeLists.txt) as a user would.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace normexp::testing {

struct CliResult {
  int code;         // exit status (-1 when killed by a signal)
  std::string out;  // stdout and stderr together
};

// Runs `command` through /bin/sh and collects its output and exit status.
inline CliResult shell(const std::string& command) {
  CliResult r{-1, ""};
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `normexp <args>`.
inline CliResult normexp(const std::string& args) {
  return shell(std::string(NORMEXP_BINARY) + " " + args);
}

}  // namespace normexp::testing
