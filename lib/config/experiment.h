#pragma once
// The whole experiment config: `name`, `seed` and the sections task, data, model, norm,
// optim, schedule, train, output (those the task reads). Sections that pick a component (data, model, norm, optim,
// schedule) have a `name` key whose value selects a registry entry; the section's allowed
// keys are then the section's common options plus that entry's options.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/node.h"
#include "config/schema.h"

namespace normexp::config {

struct SectionSchema {
  std::string section;              // "model"
  std::string kind;                 // registry kind for messages, e.g. "model", "norm scheme"
  std::vector<OptionSpec> common;   // options every entry shares
  // When non-empty the section selects a component through its "name" key (default
  // `default_component`); keys are `common` + components[name].
  std::map<std::string, std::vector<OptionSpec>> components;
  std::string default_component;
};

struct Schema {
  std::vector<SectionSchema> sections;  // in the order they are written out
  // The section whose component decides which other sections an experiment has ("task":
  // image classification uses them all, a probe or a geometry experiment only some). For
  // each of its components listed here, the sections it reads; a section it does not read
  // is an error when the config sets it and is left out of the experiment (and its hash).
  // Components not listed read every section.
  std::string selector_section;
  std::map<std::string, std::vector<std::string>> selector_uses;
};

// The order sections are written in resolved configs.
inline const std::vector<std::string>& section_order() {
  static const std::vector<std::string> k{"task",     "data",  "model", "norm",
                                          "optim",    "schedule", "train", "output"};
  return k;
}

struct Experiment {
  std::string name;
  std::int64_t seed = 0;
  std::string source;  // the config file it came from
  std::map<std::string, Params> sections;

  const Params& section(const std::string& s) const;  // throws std::out_of_range
  // The task's name: task.name, or "classify" when the experiment has no task section.
  std::string task() const;

  // Every option with its value (defaults included), nested by dots:
  // {"name":..,"seed":..,"data":{"name":"synthetic",..},"norm":{"noise":{"sigma":1.0}},..}
  nlohmann::json resolved() const;
  // The same as YAML, sections in section_order(), keys sorted (what config.yaml holds);
  // it loads back to the same experiment.
  std::string resolved_yaml() const;
  // Canonical JSON of resolved() without name, seed and every unhashed option; hash() is its
  // fnv1a64_hex. Two configs that train the same thing get the same hash.
  std::string canonical() const;
  std::string hash() const;
};

// Types a merged config tree against the schema. Unknown top-level keys, unknown components
// (the message lists the valid names), and every section issue are collected and thrown
// together as one ConfigError. `default_name` is used when the config has no `name`.
Experiment resolve_experiment(const Node& root, const Schema& schema,
                              const std::string& default_name);

// load_config_file + overrides (in order) + optional seed override + resolve_experiment.
// The default name is the file's stem.
Experiment load_experiment(const std::filesystem::path& path,
                           const std::vector<std::string>& overrides, const Schema& schema,
                           std::optional<std::int64_t> seed = std::nullopt);

}  // namespace normexp::config
