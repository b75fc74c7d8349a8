#pragma once
// A run's TensorBoard log, `events.out.tfevents.normexp`, rewritten whole from its history
// rows (one source of truth with history.jsonl and `normexp plot`; a resumed run's file has
// each step once): an HParams session from the resolved config, one scalars event per row, and
// the session's end once the run has ended. Used by the classification trainer and by every
// task that writes a history (capacity, the magnitude probe, SimCLR).

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/experiment.h"

namespace normexp::train {

// Which row fields become which scalars: (tag, row key) pairs; an empty list takes every
// numeric field of the row, nested objects as "a/b" tags. Either way a "monitor" object
// (train.monitor_every) becomes diagnostics/<layer>/<what>.
using TensorBoardTags = std::vector<std::pair<std::string, std::string>>;

// `status`: running (no session end), completed (success), diverged or anything else
// (failure). The step of a row is its "step", else its "epoch", else its index.
void write_tensorboard_log(const std::filesystem::path& dir, const config::Experiment& exp,
                           double start_unix, const std::vector<nlohmann::json>& history,
                           const std::string& status, const TensorBoardTags& tags = {});

}  // namespace normexp::train
