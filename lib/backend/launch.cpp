#include "backend/launch.h"

#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"

namespace normexp::backend {

namespace {

std::optional<std::string> env(const Getenv& getenv, const char* name) {
  const char* v = getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

int parse_int(const std::string& text, const char* name) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < 0 || v > 1'000'000)
    throw RunError(fmt::format("launch environment: {}='{}' is not a non-negative integer", name,
                               text));
  return static_cast<int>(v);
}

// SLURM_NTASKS_PER_NODE may read "4" or "4(x2)" (four on each of two nodes) or "4,2": the
// first count is this layout's tasks on the first node, the share of a node we size threads by.
int leading_count(const std::string& text, const char* name) {
  size_t end = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  return parse_int(text.substr(0, end), name);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets.
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == ',' && depth == 0) break;
    depth += c == '[' ? 1 : c == ']' ? -1 : 0;
    first += c;
  }
  const auto open = first.find('[');
  if (open == std::string::npos) return first;
  // "gpu[03-05,07]": the prefix and the first number of the range, zero padding kept.
  std::string range = first.substr(open + 1);
  size_t end = 0;
  while (end < range.size() && range[end] != '-' && range[end] != ',' && range[end] != ']') ++end;
  return first.substr(0, open) + range.substr(0, end);
}

Launch detect_launch(const Getenv& getenv) {
  Launch l;
  auto get = [&](const char* name) { return env(getenv, name); };
  auto get_int = [&](const char* name, int fallback) {
    auto v = get(name);
    return v ? parse_int(*v, name) : fallback;
  };
  if (get("RANK") && get("WORLD_SIZE")) {
    l.launcher = "torchrun";
    l.rank = get_int("RANK", 0);
    l.world_size = get_int("WORLD_SIZE", 1);
    l.local_rank = get_int("LOCAL_RANK", 0);
    l.local_world_size = get_int("LOCAL_WORLD_SIZE", l.world_size);
    l.master_addr = get("MASTER_ADDR").value_or(l.master_addr);
    l.master_port = get_int("MASTER_PORT", l.master_port);
    l.agent_store = get("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    l.store_prefix = "normexp/" + get("TORCHELASTIC_RESTART_COUNT").value_or("0");
  } else if (get("SLURM_PROCID") && get("SLURM_NTASKS")) {
    l.launcher = "slurm";
    l.rank = get_int("SLURM_PROCID", 0);
    l.world_size = get_int("SLURM_NTASKS", 1);
    l.local_rank = get_int("SLURM_LOCALID", 0);
    if (auto per_node = get("SLURM_NTASKS_PER_NODE"))
      l.local_world_size = leading_count(*per_node, "SLURM_NTASKS_PER_NODE");
    else
      l.local_world_size = l.world_size;
    if (auto addr = get("MASTER_ADDR")) {
      l.master_addr = *addr;
    } else if (auto nodes = get("SLURM_STEP_NODELIST") ? get("SLURM_STEP_NODELIST")
                                                       : get("SLURM_JOB_NODELIST")) {
      l.master_addr = first_slurm_host(*nodes);
    }
    // One port per job, so that two jobs sharing a node do not meet (MASTER_PORT wins).
    const int job = get_int("SLURM_JOB_ID", 0);
    l.master_port = get_int("MASTER_PORT", 20000 + job % 20000);
    l.store_prefix = "normexp/" + get("SLURM_RESTART_COUNT").value_or("0");
  }
  if (l.world_size < 1) throw RunError("launch environment: the world size must be at least 1");
  if (l.rank >= l.world_size)
    throw RunError(fmt::format("launch environment ({}): rank {} is outside a world of {}",
                               l.launcher, l.rank, l.world_size));
  if (l.master_port < 1 || l.master_port > 65535)
    throw RunError(fmt::format("launch environment ({}): master port {} is outside 1..65535",
                               l.launcher, l.master_port));
  if (l.local_world_size < 1) l.local_world_size = 1;
  return l;
}

Launch detect_launch() {
  return detect_launch([](const char* name) { return std::getenv(name); });
}

}  // namespace normexp::backend
