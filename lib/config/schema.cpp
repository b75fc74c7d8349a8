#include "config/schema.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include "core/text.h"

namespace normexp::config {

// ---- Range ------------------------------------------------------------------------------

bool Range::contains(double v) const {
  if (lo && (lo_open ? !(v > *lo) : !(v >= *lo))) return false;
  if (hi && (hi_open ? !(v < *hi) : !(v <= *hi))) return false;
  return true;
}

std::string Range::describe() const {
  // Bounds are printed shortest-form ("0", "0.5"), unlike float values, because they are
  // read by people, never parsed back.
  if (lo && hi) {
    return fmt::format("in {}{}, {}{}", lo_open ? '(' : '[', *lo, *hi, hi_open ? ')' : ']');
  }
  if (lo) return fmt::format("{} {}", lo_open ? ">" : ">=", *lo);
  if (hi) return fmt::format("{} {}", hi_open ? "<" : "<=", *hi);
  return "";
}

Range at_least(double lo) {
  return Range{lo, std::nullopt, false, false};
}
Range greater_than(double lo) {
  return Range{lo, std::nullopt, true, false};
}
Range between(double lo, double hi, bool lo_open, bool hi_open) {
  return Range{lo, hi, lo_open, hi_open};
}

// ---- OptionSpec builders ----------------------------------------------------------------

namespace {

OptionSpec make_spec(std::string key, ValueType type, Value def, std::string help, Range r) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = type;
  s.default_value = std::move(def);
  s.help = std::move(help);
  s.range = r;
  return s;
}

}  // namespace

OptionSpec opt_int(std::string key, std::int64_t def, std::string help, Range r) {
  return make_spec(std::move(key), ValueType::Int, def, std::move(help), r);
}
OptionSpec opt_float(std::string key, double def, std::string help, Range r) {
  return make_spec(std::move(key), ValueType::Float, def, std::move(help), r);
}
OptionSpec opt_bool(std::string key, bool def, std::string help) {
  return make_spec(std::move(key), ValueType::Bool, def, std::move(help), {});
}
OptionSpec opt_string(std::string key, std::string def, std::string help,
                      std::vector<std::string> choices) {
  OptionSpec s = make_spec(std::move(key), ValueType::String, std::move(def), std::move(help), {});
  s.choices = std::move(choices);
  return s;
}
OptionSpec opt_int_list(std::string key, std::vector<std::int64_t> def, std::string help, Range r) {
  return make_spec(std::move(key), ValueType::IntList, std::move(def), std::move(help), r);
}
OptionSpec opt_float_list(std::string key, std::vector<double> def, std::string help, Range r) {
  return make_spec(std::move(key), ValueType::FloatList, std::move(def), std::move(help), r);
}
OptionSpec hashed_unless_default(OptionSpec spec) {
  spec.hash_default = false;
  return spec;
}

OptionSpec unhashed(OptionSpec spec) {
  spec.hashed = false;
  return spec;
}

// ---- names and formatting ---------------------------------------------------------------

std::string type_name(ValueType t) {
  switch (t) {
    case ValueType::Int:
      return "an integer";
    case ValueType::Float:
      return "a float";
    case ValueType::Bool:
      return "a boolean";
    case ValueType::String:
      return "a string";
    case ValueType::IntList:
      return "a list of integers";
    case ValueType::FloatList:
      return "a list of floats";
  }
  return "a value";
}

namespace {

std::string short_type_name(ValueType t) {
  switch (t) {
    case ValueType::Int:
      return "int";
    case ValueType::Float:
      return "float";
    case ValueType::Bool:
      return "bool";
    case ValueType::String:
      return "string";
    case ValueType::IntList:
      return "int list";
    case ValueType::FloatList:
      return "float list";
  }
  return "value";
}

// Shortest text that parses back to exactly `v`, always with a '.' or an exponent so that
// YAML readers (and our own Float/Int distinction) see a float.
std::string format_float(double v) {
  std::string s = fmt::format("{}", v);
  if (std::isfinite(v) && s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

template <typename T, typename F>
std::string format_list(const std::vector<T>& items, F format_item) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += format_item(items[i]);
  }
  return out + "]";
}

}  // namespace

std::string format_value(const Value& v) {
  struct Visitor {
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return format_float(d); }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const std::vector<std::int64_t>& l) const {
      return format_list(l, [](std::int64_t i) { return std::to_string(i); });
    }
    std::string operator()(const std::vector<double>& l) const {
      return format_list(l, format_float);
    }
  };
  return std::visit(Visitor{}, v);
}

// ---- suggestions ------------------------------------------------------------------------

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The names other tools give the same thing often extend ours (optimizer, dataset, trainer,
// normalization, training for optim, data, train, norm): the shorter, of at least four
// letters, starts the longer.
bool extends(const std::string& a, const std::string& b) {
  const std::string& shorter = a.size() < b.size() ? a : b;
  const std::string& longer = a.size() < b.size() ? b : a;
  return shorter.size() >= 4 && shorter.size() < longer.size() &&
         longer.compare(0, shorter.size(), shorter) == 0;
}

}  // namespace

std::string did_you_mean(const std::string& key, const std::vector<std::string>& candidates) {
  const std::string wanted = ascii_lower(key);
  const std::string* best = nullptr;
  std::size_t best_distance = 0;
  bool tied = false;  // two names equally close: either guess may mislead
  std::vector<const std::string*> extended;
  for (const auto& c : candidates) {
    if (c == key) continue;
    const std::string name = ascii_lower(c);
    // Two edits turn any two-letter name into any other ("bs" -> "lr"), so short names
    // only get a suggestion for a single edit; case is no edit ("LR" is 'lr' at distance 0).
    const std::size_t limit = std::min(key.size(), c.size()) <= 3 ? 1 : 2;
    const std::size_t d = edit_distance(wanted, name);
    if (d <= limit) {
      if (best == nullptr || d < best_distance) {
        best = &c;
        best_distance = d;
        tied = false;
      } else if (d == best_distance) {
        tied = true;
      }
    }
    if (extends(wanted, name)) extended.push_back(&c);
  }
  if (tied) return "";
  // Likewise an extension only suggests the one name it points at ("resnet" starts resnet18
  // and resnet50 alike: the list of valid names says more).
  if (best == nullptr && extended.size() == 1) best = extended.front();
  return best ? " (did you mean '" + *best + "'?)" : "";
}

// ---- Params -----------------------------------------------------------------------------

namespace {

template <typename T>
const T& typed(const Params& p, const std::string& key, const char* wanted) {
  const T* v = std::get_if<T>(&p.get(key));
  if (v == nullptr) {
    throw std::logic_error("config option " + p.section() + "." + key + " is not " + wanted);
  }
  return *v;
}

}  // namespace

const Value& Params::get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) {
    // Reading an undeclared option is a bug in the component, not in the user's config.
    throw std::logic_error("config section '" + section_ + "' has no option '" + key + "'");
  }
  return it->second;
}

std::int64_t Params::get_int(const std::string& key) const {
  return typed<std::int64_t>(*this, key, "an integer");
}
double Params::get_float(const std::string& key) const {
  return typed<double>(*this, key, "a float");
}
bool Params::get_bool(const std::string& key) const {
  return typed<bool>(*this, key, "a boolean");
}
const std::string& Params::get_string(const std::string& key) const {
  return typed<std::string>(*this, key, "a string");
}
const std::vector<std::int64_t>& Params::get_int_list(const std::string& key) const {
  return typed<std::vector<std::int64_t>>(*this, key, "a list of integers");
}
const std::vector<double>& Params::get_float_list(const std::string& key) const {
  return typed<std::vector<double>>(*this, key, "a list of floats");
}

std::string Params::where(const std::string& key) const {
  auto it = where_.find(key);
  return it == where_.end() ? std::string() : it->second;
}

bool Params::hashed(const std::string& key) const {
  auto it = hashed_.find(key);
  return it == hashed_.end() || it->second;
}

ConfigError Params::error(const std::string& key, const std::string& message) const {
  return ConfigError(where(key), section_.empty() ? key : section_ + "." + key, message);
}

void Params::set(const std::string& key, Value v, std::string where, bool hashed) {
  values_[key] = std::move(v);
  where_[key] = std::move(where);
  hashed_[key] = hashed;
}


std::string describe_options(const std::vector<OptionSpec>& specs, const std::string& indent) {
  struct Row {
    std::string head, constraint, help;
  };
  std::vector<Row> rows;
  std::size_t head_width = 0, constraint_width = 0;
  for (const auto& s : specs) {
    Row r;
    std::string def = format_value(s.default_value);
    if (s.type == ValueType::String && def.empty()) def = "\"\"";
    r.head = s.key + ": " + short_type_name(s.type) + " = " + def;
    if (!s.choices.empty()) {
      r.constraint = fmt::format("(one of: {})", fmt::join(s.choices, "|"));
    } else if (const std::string range = s.range.describe(); !range.empty()) {
      r.constraint = "(" + range + ")";
    }
    r.help = s.help;
    if (!s.hashed) r.help += r.help.empty() ? "[not hashed]" : "  [not hashed]";
    head_width = std::max(head_width, r.head.size());
    constraint_width = std::max(constraint_width, r.constraint.size());
    rows.push_back(std::move(r));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line = indent + r.head;
    if (constraint_width > 0) {
      line += std::string(head_width - r.head.size() + 2, ' ') + r.constraint;
      line += std::string(constraint_width - r.constraint.size(), ' ');
    } else {
      line += std::string(head_width - r.head.size(), ' ');
    }
    if (!r.help.empty()) line += "  " + r.help;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace normexp::config
