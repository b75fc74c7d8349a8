#pragma once
// Wall-clock helpers shared by every writer of results: elapsed seconds for timings and ETAs,
// and the UTC timestamps of metrics.json.

#include <chrono>
#include <string>

namespace normexp {

using SteadyTime = std::chrono::steady_clock::time_point;

inline double seconds_since(SteadyTime t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string iso_time_now();  // UTC, ISO 8601, e.g. "2026-11-30T15:49:43Z"

// Seconds since 1970-01-01 UTC (event files' wall times).
inline double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace normexp
