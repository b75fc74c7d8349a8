// Indexing a results root: every metrics.json under it, by hash.

#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"

namespace normexp::report {

namespace fs = std::filesystem;
using nlohmann::json;

std::map<std::string, std::vector<RunRecord>> index_results(const fs::path& root) {
  std::map<std::string, std::vector<RunRecord>> index;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return index;
  for (const auto& name_dir : fs::directory_iterator(root, ec)) {
    if (!name_dir.is_directory()) continue;
    for (const auto& hash_dir : fs::directory_iterator(name_dir.path(), ec)) {
      if (!hash_dir.is_directory()) continue;
      for (const auto& seed_dir : fs::directory_iterator(hash_dir.path(), ec)) {
        const auto dirname = seed_dir.path().filename().string();
        if (!seed_dir.is_directory() || dirname.rfind("seed", 0) != 0) continue;
        const auto mpath = seed_dir.path() / "metrics.json";
        if (!fs::exists(mpath)) continue;
        RunRecord rec;
        rec.dir = seed_dir.path();
        rec.name = name_dir.path().filename().string();
        rec.hash = hash_dir.path().filename().string();
        try {
          rec.seed = std::stoll(dirname.substr(4));
        } catch (const std::exception&) {
          continue;  // not a run directory of ours
        }
        try {
          rec.metrics = json::parse(read_file(mpath));
          if (!rec.metrics.is_object())
            rec.problem = std::string("valid JSON but not an object (") +
                          rec.metrics.type_name() + ")";
        } catch (const json::exception& e) {
          rec.problem = std::string("not valid JSON (") + e.what() + ")";
        } catch (const std::exception& e) {
          rec.problem = e.what();
        }
        if (rec.problem.empty()) {
          const auto text = [&](const char* key, const std::string& def) {
            const auto it = rec.metrics.find(key);
            return it != rec.metrics.end() && it->is_string() ? it->get<std::string>() : def;
          };
          rec.hash = text("hash", rec.hash);
          rec.status = text("status", "unknown");
          const auto seed = rec.metrics.find("seed");
          if (seed != rec.metrics.end() && seed->is_number_integer())
            rec.seed = seed->get<std::int64_t>();
        } else {
          rec.status = "unreadable";
          rec.metrics = json::object();
        }
        index[rec.hash].push_back(std::move(rec));
      }
    }
  }
  for (auto& [hash, runs] : index)  // directory order is arbitrary; reports must not be
    std::sort(runs.begin(), runs.end(),
              [](const RunRecord& a, const RunRecord& b) { return a.seed < b.seed; });
  return index;
}

std::optional<double> metric_value(const json& metrics, const std::string& dotted) {
  const json* cur = &metrics;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!cur->is_object() || !cur->contains(part)) return std::nullopt;
    cur = &(*cur)[part];
  }
  if (!cur->is_number()) return std::nullopt;
  const double v = cur->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

std::vector<std::string> unreadable_runs(const std::map<std::string, std::vector<RunRecord>>& index) {
  std::vector<std::string> out;
  for (const auto& [hash, runs] : index)
    for (const auto& run : runs)
      if (!run.problem.empty())
        out.push_back((run.dir / "metrics.json").string() + ": " + run.problem);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace normexp::report
