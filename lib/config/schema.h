#pragma once
// Declared options: every component (dataset, model, norm scheme, optimizer, schedule) says
// which keys it reads, their types, defaults, allowed ranges and a help line. Parsing a
// section against its declared options types every value, fills defaults, and reports every
// unknown key, wrong type and out-of-range value at once.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/node.h"
#include "core/error.h"

namespace normexp::config {

enum class ValueType { Int, Float, Bool, String, IntList, FloatList };

using Value = std::variant<std::int64_t, double, bool, std::string, std::vector<std::int64_t>,
                           std::vector<double>>;

// Numeric bounds (for Int, Float, and each element of the list types).
struct Range {
  std::optional<double> lo, hi;
  bool lo_open = false, hi_open = false;
  bool contains(double v) const;
  std::string describe() const;  // "> 0", ">= 1", "in [0, 1)", "" when unbounded
};
Range at_least(double lo);
Range greater_than(double lo);
Range between(double lo, double hi, bool lo_open = false, bool hi_open = false);

struct OptionSpec {
  std::string key;  // dotted, relative to the section: "lr", "noise.sigma"
  ValueType type = ValueType::Float;
  Value default_value;
  std::string help;
  Range range;                       // numeric types
  std::vector<std::string> choices;  // String: allowed values (empty = any)
  bool hashed = true;  // false: not part of the experiment's identity (devices, paths, logging)
  // false: hashed only when set to something other than the default. For options added after
  // results exist: configs that leave them at the default keep their hash (and their runs).
  bool hash_default = true;
};

OptionSpec opt_int(std::string key, std::int64_t def, std::string help, Range r = {});
OptionSpec opt_float(std::string key, double def, std::string help, Range r = {});
OptionSpec opt_bool(std::string key, bool def, std::string help);
OptionSpec opt_string(std::string key, std::string def, std::string help,
                      std::vector<std::string> choices = {});
OptionSpec opt_int_list(std::string key, std::vector<std::int64_t> def, std::string help,
                        Range r = {});
OptionSpec opt_float_list(std::string key, std::vector<double> def, std::string help, Range r = {});
// Marks an option as not part of the experiment hash.
OptionSpec unhashed(OptionSpec spec);
OptionSpec hashed_unless_default(OptionSpec spec);

std::string type_name(ValueType t);        // "an integer", "a float", "a boolean", ...
std::string format_value(const Value& v);  // YAML-like: 0.1, true, cosine, [30, 60]

// The typed values of one section (defaults filled in), with where each came from.
class Params {
 public:
  Params() = default;
  explicit Params(std::string section) : section_(std::move(section)) {}

  const std::string& section() const { return section_; }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  const std::vector<std::int64_t>& get_int_list(const std::string& key) const;
  const std::vector<double>& get_float_list(const std::string& key) const;
  const Value& get(const std::string& key) const;

  // "file:line" where the value was written, "--set ..." or "default".
  std::string where(const std::string& key) const;
  bool is_default(const std::string& key) const { return where(key) == "default"; }
  bool hashed(const std::string& key) const;
  // A ConfigError pointing at this key (for checks done by components after parsing, e.g.
  // "groups 16 does not divide 24 channels of layer conv3").
  ConfigError error(const std::string& key, const std::string& message) const;

  void set(const std::string& key, Value v, std::string where, bool hashed = true);
  const std::map<std::string, Value>& values() const { return values_; }

 private:
  std::string section_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> where_;
  std::map<std::string, bool> hashed_;
};

// Types `node` (a section's mapping, or nullptr when the section is absent) against `specs`.
// Appends one issue per unknown key (full path, e.g. "optim.lrr"), wrong type or value out of
// range; never throws for those.
Params parse_section(const Node* node, const std::string& section,
                     const std::vector<OptionSpec>& specs, std::vector<ConfigIssue>& issues);

// Types one scalar as written (no range or choice checks); nullopt when the text is not of
// that type. Int: decimal integer literals only ("1e3" and "0x10" are rejected); Float: any
// finite decimal literal ("1e-3", ".5", "3"); Bool: true/false, yes/no, on/off, y/n in lower,
// upper or title case, as yaml-cpp reads them; String: anything. List types give nullopt.
std::optional<Value> parse_scalar(std::string_view text, ValueType type);

// " (did you mean 'lr'?)" when one of `candidates` is a likely typo of `key` (edit distance,
// ignoring case, 1 for short names and 2 otherwise) or the one name that `key` extends or
// shortens ("optimizer" for "optim"), else "".
std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates);

// Renders specs for `normexp list`: one line per option, "key: type = default  (range) help".
std::string describe_options(const std::vector<OptionSpec>& specs, const std::string& indent);

}  // namespace normexp::config
