#include "train/tensorboard_log.h"

#include <functional>
#include <map>

#include "core/clock.h"
#include "core/tensorboard.h"

namespace normexp::train {

namespace {
using json = nlohmann::json;

// Numeric leaves of `j` under `prefix` ("a/b"), skipping `skip` keys at the top level.
void numeric_leaves(const std::string& prefix, const json& j,
                    std::vector<std::pair<std::string, double>>& out) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) numeric_leaves(prefix.empty() ? k : prefix + "/" + k, v, out);
  } else if (j.is_number() && !prefix.empty()) {
    out.emplace_back(prefix, j.get<double>());
  }
}
}  // namespace

void write_tensorboard_log(const std::filesystem::path& dir, const config::Experiment& exp,
                           double start_unix, const std::vector<json>& history,
                           const std::string& status, const TensorBoardTags& tags) {
  std::vector<std::string> events{tensorboard::file_version_event(start_unix)};
  std::map<std::string, json> hparams{{"seed", exp.seed}};
  std::function<void(const std::string&, const json&)> flatten = [&](const std::string& prefix,
                                                                      const json& j) {
    if (j.is_object()) {
      for (const auto& [k, v] : j.items()) flatten(prefix.empty() ? k : prefix + "." + k, v);
    } else if (!j.is_null()) {
      hparams[prefix] = j;
    }
  };
  flatten("", exp.resolved());
  events.push_back(tensorboard::hparams_start_event(start_unix, hparams, exp.name + "/" + exp.hash()));
  for (size_t i = 0; i < history.size(); ++i) {
    const json& row = history[i];
    std::vector<std::pair<std::string, double>> scalars;
    if (tags.empty()) {
      for (const auto& [k, v] : row.items())
        if (k != "monitor" && k != "step" && k != "wall_time") numeric_leaves(k, v, scalars);
    } else {
      for (const auto& [tag, key] : tags) {
        if (!row.contains(key) || !row[key].is_number()) continue;
        const double v = row[key].get<double>();
        if (v < 0 && key == "test_mean_class_acc") continue;  // not counted: -1
        scalars.emplace_back(tag, v);
      }
    }
    // The epoch's last per-layer sample (train.monitor_every), as diagnostics/<layer>/<what>.
    if (row.contains("monitor")) {
      std::vector<std::pair<std::string, double>> diag;
      numeric_leaves("diagnostics", row["monitor"], diag);
      for (auto& d : diag)
        if (d.first != "diagnostics/step") scalars.push_back(std::move(d));
    }
    const int64_t step = row.contains("step") && row["step"].is_number()
                             ? row["step"].get<int64_t>()
                             : row.contains("epoch") && row["epoch"].is_number()
                                   ? row["epoch"].get<int64_t>()
                                   : static_cast<int64_t>(i);
    const double wall = row.value("wall_time", start_unix);
    events.push_back(tensorboard::scalars_event(wall, step, scalars));
  }
  if (status != "running")
    events.push_back(
        tensorboard::hparams_end_event(unix_now(), status == "completed" ? "success" : "failure"));
  tensorboard::write_event_file(dir, "events.out.tfevents.normexp", events);
}

}  // namespace normexp::train
