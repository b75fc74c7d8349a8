#include "analysis/profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "backend/device.h"
#include "backend/torch_compat.h"

namespace normexp::analysis {

namespace kineto = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

Profile profile_calls(const std::function<void()>& fn, int64_t calls, const c10::Device& device,
                      const std::string& trace_path) {
  if (calls < 1) throw std::invalid_argument("profile_calls: calls must be >= 1");
  std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  if (device.is_cuda()) activities.insert(impl::ActivityType::CUDA);
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
  backend::synchronize(device);  // earlier work is not ours to count
  kineto::prepareProfiler(config, activities);
  kineto::enableProfiler(config, activities);
  std::unique_ptr<kineto::ProfilerResult> result;
  try {
    for (int64_t i = 0; i < calls; ++i) fn();
    backend::synchronize(device);
  } catch (...) {
    kineto::disableProfiler();
    throw;
  }
  result = kineto::disableProfiler();
  if (!result) throw std::runtime_error("the profiler returned no result");
  std::string trace_note;
  if (!trace_path.empty()) {
    // Debian's LibTorch has no Kineto: its profiler collects events but cannot write a
    // trace. The table is what matters; the trace is not worth losing it for.
    try {
      result->save(trace_path);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      trace_note = "no trace written to " + trace_path + ": " + what.substr(0, what.find('\n'));
    }
  }

  // On CUDA only the device's own events (kernels, memcpy, memset): the CPU side's launch
  // calls overlap them and would count the same time twice.
  const auto wanted = device.is_cuda() ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  std::map<std::string, ProfileRow> by_name;
  for (const auto& ev : result->events()) {
    if (ev.deviceType() != wanted) continue;
    auto& row = by_name[ev.name()];
    row.name = ev.name();
    row.calls += 1;
    row.total_us += compat::event_duration_us(ev);
  }
  Profile p;
  p.what = device.is_cuda() ? "cuda kernels and copies" : "cpu ops (inclusive)";
  p.calls = calls;
  p.trace_note = std::move(trace_note);
  for (auto& [name, row] : by_name) {
    // Inclusive CPU times would add callers and callees up; the total is the device's busy
    // time on CUDA only.
    if (device.is_cuda()) p.total_us += row.total_us;
    p.rows.push_back(std::move(row));
  }
  std::sort(p.rows.begin(), p.rows.end(), [](const ProfileRow& a, const ProfileRow& b) {
    return a.total_us != b.total_us ? a.total_us > b.total_us : a.name < b.name;
  });
  return p;
}

nlohmann::json profile_json(const Profile& p, size_t top) {
  const double n = static_cast<double>(p.calls);
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < p.rows.size() && i < top; ++i) {
    const auto& r = p.rows[i];
    rows.push_back({{"name", r.name},
                    {"calls_per_call", static_cast<double>(r.calls) / n},
                    {"us_per_call", r.total_us / n},
                    {"share", p.total_us > 0 ? nlohmann::json(r.total_us / p.total_us)
                                             : nlohmann::json()}});
  }
  int64_t events = 0;
  for (const auto& r : p.rows) events += r.calls;
  return {{"what", p.what},
          {"calls", p.calls},
          {"per_call_us", p.total_us > 0 ? nlohmann::json(p.total_us / n) : nlohmann::json()},
          {"events_per_call", static_cast<double>(events) / n},
          {"distinct", p.rows.size()},
          {"rows", rows}};
}

std::string profile_table(const nlohmann::json& profile, size_t name_width) {
  std::string out = fmt::format(
      "# {}, per call ({} calls profiled): {} events{}\n| name | per call | us | share |\n"
      "|---|---|---|---|\n",
      profile["what"].get<std::string>(), profile["calls"].get<int64_t>(),
      profile["events_per_call"].get<double>(),
      profile["per_call_us"].is_null()
          ? std::string()
          : fmt::format(", {:.1f} us busy", profile["per_call_us"].get<double>()));
  for (const auto& r : profile["rows"]) {
    std::string name = r["name"].get<std::string>();
    if (name.size() > name_width) name = name.substr(0, name_width - 3) + "...";
    for (auto& c : name)
      if (c == '|') c = '/';  // a table cell
    out += fmt::format("| {} | {:g} | {:.1f} | {} |\n", name, r["calls_per_call"].get<double>(),
                       r["us_per_call"].get<double>(),
                       r["share"].is_null() ? std::string("–")
                                            : fmt::format("{:.1f} %", 100 * r["share"].get<double>()));
  }
  return out;
}

}  // namespace normexp::analysis
