#pragma once
// Where a step's time goes: LibTorch's Kineto profiler around a few calls of a function,
// summed by name. On CUDA the rows are the device's kernels and copies (GPU time, CUPTI),
// which is what explains a slow step: which kernel, how many launches, which copy. On the
// CPU the rows are ATen ops with inclusive time (a nested op is also inside its caller's).
//
// Used by `normexp bench --profile` and `normexp bench norms --profile`; the chrome trace
// for Perfetto is optional.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace c10 {
struct Device;
}

namespace normexp::analysis {

struct ProfileRow {
  std::string name;     // kernel or op name, as the profiler reports it
  int64_t calls = 0;    // over all profiled calls of the function
  double total_us = 0;  // summed duration
};

struct Profile {
  std::string what;              // "cuda kernels and copies" or "cpu ops (inclusive)"
  int64_t calls = 0;             // calls of the profiled function
  double total_us = 0;           // sum over the rows (device busy time on CUDA)
  std::vector<ProfileRow> rows;  // longest total first
  std::string trace_note;        // why the requested trace was not written; empty if it was
};

// Runs `fn` `calls` times on this thread under the profiler (synchronizing `device` after
// the last), then sums the events by name. Writes the chrome trace to `trace_path` if not
// empty and this LibTorch can (else trace_note says why). std::runtime_error if this
// LibTorch cannot profile at all (or a profiler is already on).
Profile profile_calls(const std::function<void()>& fn, int64_t calls, const c10::Device& device,
                      const std::string& trace_path = "");

// {"what", "calls", "per_call_us", "rows": [{"name", "calls_per_call", "us_per_call",
// "share"}...]}: the `top` longest rows, per call of the function.
nlohmann::json profile_json(const Profile& p, size_t top);

// A Markdown table of profile_json's rows, names cut to `name_width` characters.
std::string profile_table(const nlohmann::json& profile, size_t name_width = 90);

}  // namespace normexp::analysis
