#pragma once
// How every normexp command reports an error: the message on stderr and the exit code (2 for
// a bad config with every issue listed, 1 for anything else). main adds 3 for an existing run.

#include <iostream>

#include "core/error.h"

namespace normexp {

inline void print_config_error(const ConfigError& e) {
  std::cerr << "normexp: invalid configuration (" << e.issues().size() << " problem"
            << (e.issues().size() == 1 ? "" : "s") << "):\n";
  for (const auto& issue : e.issues()) std::cerr << "  " << issue.str() << "\n";
}

// Runs a subcommand's body (from a CLI11 callback) and returns its exit code.
template <class F>
int guarded(F&& fn) {
  try {
    fn();
    return 0;
  } catch (const ConfigError& e) {
    print_config_error(e);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "normexp: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace normexp
