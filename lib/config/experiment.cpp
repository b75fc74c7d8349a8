#include "config/experiment.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <stdexcept>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/hash.h"

namespace normexp::config {

using nlohmann::json;

std::string Experiment::task() const {
  auto it = sections.find("task");
  return it == sections.end() ? "classify" : it->second.get_string("name");
}

const Params& Experiment::section(const std::string& s) const {
  auto it = sections.find(s);
  if (it == sections.end()) throw std::out_of_range("experiment has no section '" + s + "'");
  return it->second;
}

namespace {

json to_json(const Value& v) {
  struct Visitor {
    json operator()(std::int64_t i) const { return i; }
    json operator()(double d) const { return d; }
    json operator()(bool b) const { return b; }
    json operator()(const std::string& s) const { return s; }
    json operator()(const std::vector<std::int64_t>& l) const { return l; }
    json operator()(const std::vector<double>& l) const { return l; }
  };
  return std::visit(Visitor{}, v);
}

std::vector<std::string> split_dots(const std::string& key) {
  std::vector<std::string> parts;
  std::size_t start = 0, dot;
  while ((dot = key.find('.', start)) != std::string::npos) {
    parts.push_back(key.substr(start, dot - start));
    start = dot + 1;
  }
  parts.push_back(key.substr(start));
  return parts;
}

json& nested_slot(json& root, const std::string& dotted) {
  json* cur = &root;
  for (const auto& part : split_dots(dotted)) cur = &(*cur)[part];
  return *cur;
}

void erase_nested(json& root, const std::string& dotted) {
  const std::vector<std::string> parts = split_dots(dotted);
  json* cur = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    auto it = cur->find(parts[i]);
    if (it == cur->end() || !it->is_object()) return;
    cur = &*it;
  }
  cur->erase(parts.back());
}

void drop_empty_objects(json& j) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end();) {
    drop_empty_objects(*it);
    if (it->is_object() && it->empty()) {
      it = j.erase(it);
    } else {
      ++it;
    }
  }
}

// Sections in the documented order, then any others a schema adds (alphabetically), so
// that nothing is silently left out of config.yaml.
std::vector<std::string> ordered_sections(const std::map<std::string, Params>& sections) {
  std::vector<std::string> out;
  for (const auto& s : section_order()) {
    if (sections.count(s)) out.push_back(s);
  }
  for (const auto& [s, params] : sections) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

// Strings that a YAML reader would take for a number, boolean or null are quoted, so that
// config.yaml reads unambiguously; yaml-cpp quotes strings with special characters itself.
void emit_string(YAML::Emitter& out, const std::string& s) {
  const bool ambiguous = s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL" ||
                         parse_scalar(s, ValueType::Float) || parse_scalar(s, ValueType::Bool);
  if (ambiguous) out << YAML::DoubleQuoted;
  out << s;
}

void emit_json(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, value] : j.items()) {
        out << YAML::Key << key << YAML::Value;
        emit_json(out, value);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& item : j) emit_json(out, item);
      out << YAML::EndSeq;
      break;
    case json::value_t::number_integer:
      out << j.get<std::int64_t>();
      break;
    case json::value_t::number_unsigned:
      out << j.get<std::uint64_t>();
      break;
    case json::value_t::number_float:
      // format_value gives the shortest exact text and always marks it as a float.
      out << format_value(Value(j.get<double>()));
      break;
    case json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      break;
    case json::value_t::string:
      emit_string(out, j.get<std::string>());
      break;
    default:
      out << YAML::Null;
      break;
  }
}

std::string join(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

// Keeps the keys that `specs` can account for; used when a section's component is unknown,
// so that its options are not all reported as unknown keys on top of the real mistake.
Node only_known_keys(const Node& section, const std::vector<OptionSpec>& specs) {
  Node out = section;
  out.map.clear();
  for (const auto& kv : section.map) {
    const bool known = std::any_of(specs.begin(), specs.end(), [&](const OptionSpec& s) {
      return s.key == kv.first || s.key.compare(0, kv.first.size() + 1, kv.first + ".") == 0;
    });
    if (known) out.map.push_back(kv);
  }
  return out;
}

Params resolve_section(const Node* node, const SectionSchema& ss,
                       std::vector<ConfigIssue>& issues) {
  if (ss.components.empty()) return parse_section(node, ss.section, ss.common, issues);

  std::vector<OptionSpec> specs;
  specs.push_back(opt_string("name", ss.default_component, "which " + ss.kind + " to use"));
  specs.insert(specs.end(), ss.common.begin(), ss.common.end());

  const Node* name_node = node != nullptr ? node->find("name") : nullptr;
  std::string component = ss.default_component;
  bool usable_name = true;
  if (name_node != nullptr) {
    // A name that is not a string is reported by parse_section; the section is then typed
    // with its common options only.
    usable_name = name_node->kind == Node::Kind::Scalar;
    if (usable_name) component = name_node->scalar;
  }

  auto it = ss.components.find(component);
  if (usable_name && it != ss.components.end()) {
    specs.insert(specs.end(), it->second.begin(), it->second.end());
    return parse_section(node, ss.section, specs, issues);
  }

  if (usable_name) {
    std::vector<std::string> valid;
    for (const auto& entry : ss.components) valid.push_back(entry.first);
    // The list always follows: a suggestion may be near the wrong name ("resnet9000" is
    // nearest "resnet"), and the components are few enough to read.
    issues.push_back(ConfigIssue{name_node != nullptr ? name_node->where() : "default",
                                 ss.section + ".name",
                                 "unknown " + ss.kind + " '" + component + "'" +
                                     did_you_mean(component, valid) + " (valid: " +
                                     join(valid) + ")"});
  }
  if (node == nullptr || !node->is_map()) return parse_section(node, ss.section, specs, issues);
  const Node known = only_known_keys(*node, specs);
  return parse_section(&known, ss.section, specs, issues);
}

// A known option written in the wrong place: "train.lr" or a top-level "lr" for optim.lr,
// "norm.sigma" for norm.noise.sigma (other tools keep lr with the training settings). Where
// the suggestion within the key's own section found nothing, an unknown key whose last part
// names an option (or option group) of this experiment gets those as its suggestion instead of
// the section's valid keys; more than three places are no suggestion ("name").
void suggest_other_places(std::vector<ConfigIssue>& issues,
                          const std::map<std::string, Params>& sections) {
  for (ConfigIssue& issue : issues) {
    const bool unknown = issue.message.rfind("unknown key", 0) == 0 ||
                         issue.message.rfind("unknown top-level key", 0) == 0;
    if (!unknown || issue.message.find("did you mean") != std::string::npos) continue;
    const std::string leaf = split_dots(issue.path).back();
    std::vector<std::string> places;
    for (const auto& [section, params] : sections) {
      for (const auto& entry : params.values()) {
        const std::vector<std::string> parts = split_dots(section + "." + entry.first);
        std::string place = parts[0];
        for (std::size_t i = 1; i < parts.size(); ++i) {
          place += "." + parts[i];
          if (parts[i] == leaf && std::find(places.begin(), places.end(), place) == places.end()) {
            places.push_back(place);
          }
        }
      }
    }
    if (places.empty() || places.size() > 3) continue;
    for (std::string& place : places) place = "'" + place + "'";
    const std::string kind = issue.message.substr(0, issue.message.find(" ("));
    issue.message = kind + " (did you mean " + fmt::format("{}", fmt::join(places, " or ")) + "?)";
  }
}

}  // namespace

json Experiment::resolved() const {
  json j = json::object();
  j["name"] = name;
  j["seed"] = seed;
  for (const auto& [sec, params] : sections) {
    json& out = j[sec] = json::object();
    for (const auto& [key, value] : params.values()) nested_slot(out, key) = to_json(value);
  }
  return j;
}

std::string Experiment::resolved_yaml() const {
  const json j = resolved();
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value;
  emit_string(out, name);
  out << YAML::Key << "seed" << YAML::Value << seed;
  for (const auto& sec : ordered_sections(sections)) {
    out << YAML::Key << sec << YAML::Value;
    emit_json(out, j.at(sec));
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string Experiment::canonical() const {
  json j = resolved();
  j.erase("name");
  j.erase("seed");
  for (const auto& [sec, params] : sections) {
    for (const auto& [key, value] : params.values()) {
      if (!params.hashed(key)) erase_nested(j[sec], key);
    }
  }
  // The default task (classification) is left out, so that configs written before tasks
  // existed keep their hashes and their results.
  if (j.contains("task") && j["task"] == json{{"name", "classify"}}) j.erase("task");
  drop_empty_objects(j);
  return j.dump();
}

std::string Experiment::hash() const {
  return fnv1a64_hex(canonical());
}

Experiment resolve_experiment(const Node& root, const Schema& schema,
                              const std::string& default_name) {
  if (!root.is_map() && !root.is_null()) {
    throw ConfigError(root.where(), "", "the top level of a config must be a mapping");
  }
  std::vector<ConfigIssue> issues;

  std::vector<std::string> known{"name", "seed"};
  for (const auto& ss : schema.sections) known.push_back(ss.section);

  Node top;
  top.kind = Node::Kind::Map;
  top.file = root.file;
  for (const auto& [key, value] : root.map) {
    if (key == "name" || key == "seed") {
      top.map.emplace_back(key, value);
    } else if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string hint = did_you_mean(key, known);
      if (hint.empty()) hint = " (valid: " + join(known) + ")";
      issues.push_back(ConfigIssue{value.where(), key, "unknown top-level key" + hint});
    }
  }

  const Params top_params = parse_section(&top, "",
                                          {opt_string("name", default_name, "experiment name"),
                                           opt_int("seed", 0, "random seed", at_least(0))},
                                          issues);
  Experiment exp;
  exp.name = top_params.get_string("name");
  exp.seed = top_params.get_int("seed");
  // The name becomes a directory name under the results root.
  if (exp.name.empty() || exp.name.find('/') != std::string::npos || exp.name == "." ||
      exp.name == "..") {
    issues.push_back(ConfigIssue{top_params.where("name"), "name",
                                 "must be a non-empty name without '/', got '" + exp.name + "'"});
  }

  // Checked in the order config.yaml is written, so the issues read top to bottom.
  std::vector<const SectionSchema*> ordered;
  for (const auto& name : section_order()) {
    for (const auto& ss : schema.sections) {
      if (ss.section == name) ordered.push_back(&ss);
    }
  }
  for (const auto& ss : schema.sections) {
    if (std::find(ordered.begin(), ordered.end(), &ss) == ordered.end()) ordered.push_back(&ss);
  }
  // The selector section first: its component decides which other sections exist.
  const std::vector<std::string>* uses = nullptr;
  std::string selected;
  for (const SectionSchema* ss : ordered) {
    if (ss->section != schema.selector_section) continue;
    exp.sections[ss->section] = resolve_section(root.find(ss->section), *ss, issues);
    selected = exp.sections[ss->section].get_string("name");
    auto it = schema.selector_uses.find(selected);
    if (it != schema.selector_uses.end()) uses = &it->second;
  }
  for (const SectionSchema* ss : ordered) {
    if (ss->section == schema.selector_section) continue;
    if (uses != nullptr && std::find(uses->begin(), uses->end(), ss->section) == uses->end()) {
      if (const Node* n = root.find(ss->section)) {
        issues.push_back(ConfigIssue{n->where(), ss->section,
                                     schema.selector_section + " '" + selected +
                                         "' does not read section '" + ss->section +
                                         "' (it reads: " + join(*uses) + "); remove it"});
      }
      continue;
    }
    exp.sections[ss->section] = resolve_section(root.find(ss->section), *ss, issues);
  }

  suggest_other_places(issues, exp.sections);
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return exp;
}

Experiment load_experiment(const std::filesystem::path& path,
                           const std::vector<std::string>& overrides, const Schema& schema,
                           std::optional<std::int64_t> seed) {
  Node root = load_config_file(path);

  // Bad overrides are collected with the config's own issues so that one run reports all.
  std::vector<ConfigIssue> issues;
  for (const auto& o : overrides) {
    try {
      apply_override(root, o);
    } catch (const ConfigError& e) {
      issues.insert(issues.end(), e.issues().begin(), e.issues().end());
    }
  }
  if (seed) {
    Node& s = root.get_or_add("seed");
    s = Node{};
    s.kind = Node::Kind::Scalar;
    s.scalar = std::to_string(*seed);
    s.file = "--seed";
  }

  Experiment exp;
  try {
    exp = resolve_experiment(root, schema, path.stem().string());
  } catch (const ConfigError& e) {
    issues.insert(issues.end(), e.issues().begin(), e.issues().end());
  }
  if (!issues.empty()) throw ConfigError(std::move(issues));
  exp.source = path.string();
  return exp;
}

}  // namespace normexp::config
