// Parsing: scalars from YAML text by type, and a config section typed and checked against its
// option specs (every problem collected, with file:line and a did-you-mean).
#include "config/schema.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace normexp::config {

namespace {

std::string quoted(const Node& n) {
  return n.kind == Node::Kind::Scalar ? "'" + n.scalar + "'" : n.describe();
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// from_chars is locale-independent, unlike strtod, and accepts the same decimal forms.
// Non-finite values are rejected because no option wants them.
std::optional<double> parse_float(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  static const std::pair<std::string_view, bool> kWords[] = {
      {"true", true},   {"yes", true}, {"on", true},   {"y", true},
      {"false", false}, {"no", false}, {"off", false}, {"n", false}};
  for (const auto& [word, value] : kWords) {
    std::string upper(word), title(word);
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    title[0] = upper[0];
    if (s == word || s == upper || s == title) return value;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Value> parse_scalar(std::string_view text, ValueType type) {
  switch (type) {
    case ValueType::Int:
      if (auto i = parse_int(text)) return Value(*i);
      break;
    case ValueType::Float:
      if (auto d = parse_float(text)) return Value(*d);
      break;
    case ValueType::Bool:
      if (auto b = parse_bool(text)) return Value(*b);
      break;
    case ValueType::String:
      return Value(std::string(text));
    default:
      break;
  }
  return std::nullopt;
}

namespace {

class SectionParser {
 public:
  SectionParser(const std::string& section, const std::vector<OptionSpec>& specs,
                std::vector<ConfigIssue>& issues)
      : section_(section), specs_(specs), issues_(issues), params_(section) {}

  Params run(const Node* node) {
    for (const auto& spec : specs_) {
      params_.set(spec.key, spec.default_value, "default", spec.hashed && spec.hash_default);
    }
    if (node == nullptr) return params_;
    if (!node->is_map()) {
      issue(*node, "", "expected a mapping, got " + quoted(*node));
      return params_;
    }
    walk(*node, "");
    return params_;
  }

 private:
  std::string full_path(const std::string& key) const {
    if (section_.empty()) return key;
    return key.empty() ? section_ : section_ + "." + key;
  }

  void issue(const Node& at, const std::string& key, std::string message) {
    issues_.push_back(ConfigIssue{at.where(), full_path(key), std::move(message)});
  }

  const OptionSpec* spec_for(const std::string& key) const {
    for (const auto& s : specs_) {
      if (s.key == key) return &s;
    }
    return nullptr;
  }

  // The names allowed directly under `prefix` ("" for the section itself).
  std::vector<std::string> children_of(const std::string& prefix) const {
    std::vector<std::string> out;
    const std::string lead = prefix.empty() ? "" : prefix + ".";
    for (const auto& s : specs_) {
      if (s.key.compare(0, lead.size(), lead) != 0) continue;
      std::string rest = s.key.substr(lead.size());
      rest = rest.substr(0, rest.find('.'));
      if (std::find(out.begin(), out.end(), rest) == out.end()) out.push_back(rest);
    }
    return out;
  }

  void walk(const Node& map, const std::string& prefix) {
    for (const auto& [k, v] : map.map) {
      const std::string key = prefix.empty() ? k : prefix + "." + k;
      if (const OptionSpec* spec = spec_for(key)) {
        check(*spec, v);
        continue;
      }
      const std::vector<std::string> siblings = children_of(prefix);
      if (!children_of(key).empty()) {
        if (v.is_map()) {
          walk(v, key);
        } else {
          issue(v, key, "expected a mapping, got " + quoted(v));
        }
        continue;
      }
      std::string hint = did_you_mean(k, siblings);
      if (hint.empty() && !siblings.empty())
        hint = fmt::format(" (valid: {})", fmt::join(siblings, ", "));
      issue(v, key, "unknown key" + hint);
    }
  }

  // Types one scalar; on failure records an issue at `path` and returns nothing.
  std::optional<Value> scalar(const OptionSpec& spec, ValueType type, const Node& v,
                              const std::string& path) {
    if (v.kind != Node::Kind::Scalar) {
      issue(v, path, "expected " + type_name(type) + ", got " + quoted(v));
      return std::nullopt;
    }
    std::optional<Value> out = parse_scalar(v.scalar, type);
    if (!out) {
      issue(v, path, "expected " + type_name(type) + ", got " + quoted(v));
      return std::nullopt;
    }
    if (type == ValueType::Int || type == ValueType::Float) {
      const double d = type == ValueType::Int ? static_cast<double>(std::get<std::int64_t>(*out))
                                              : std::get<double>(*out);
      if (!spec.range.contains(d)) {
        issue(v, path, "must be " + spec.range.describe() + ", got " + v.scalar);
        return std::nullopt;
      }
    }
    if (type == ValueType::String && !spec.choices.empty() &&
        std::find(spec.choices.begin(), spec.choices.end(), v.scalar) == spec.choices.end()) {
      issue(v, path,
            fmt::format("must be one of {}; got {}{}", fmt::join(spec.choices, ", "), quoted(v),
                        did_you_mean(v.scalar, spec.choices)));
      return std::nullopt;
    }
    return out;
  }

  template <typename T>
  std::optional<Value> list(const OptionSpec& spec, ValueType element, const Node& v) {
    if (v.kind != Node::Kind::Seq) {
      issue(v, spec.key, "expected " + type_name(spec.type) + ", got " + quoted(v));
      return std::nullopt;
    }
    std::vector<T> items;
    bool ok = true;
    for (std::size_t i = 0; i < v.seq.size(); ++i) {
      auto item = scalar(spec, element, v.seq[i], spec.key + "[" + std::to_string(i) + "]");
      if (item) {
        items.push_back(std::get<T>(*item));
      } else {
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return Value(std::move(items));
  }

  void check(const OptionSpec& spec, const Node& v) {
    std::optional<Value> value;
    switch (spec.type) {
      case ValueType::IntList:
        value = list<std::int64_t>(spec, ValueType::Int, v);
        break;
      case ValueType::FloatList:
        value = list<double>(spec, ValueType::Float, v);
        break;
      default:
        value = scalar(spec, spec.type, v, spec.key);
        break;
    }
    if (value) {
      const bool hashed = spec.hashed && (spec.hash_default || !(*value == spec.default_value));
      params_.set(spec.key, std::move(*value), v.where(), hashed);
    }
  }

  const std::string& section_;
  const std::vector<OptionSpec>& specs_;
  std::vector<ConfigIssue>& issues_;
  Params params_;
};

}  // namespace

Params parse_section(const Node* node, const std::string& section,
                     const std::vector<OptionSpec>& specs, std::vector<ConfigIssue>& issues) {
  return SectionParser(section, specs, issues).run(node);
}

// ---- describe ---------------------------------------------------------------------------

}  // namespace normexp::config
