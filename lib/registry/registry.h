#pragma once
// One explicit table per component kind (design guide): filled by a register_builtin_*()
// function, duplicates rejected, and a failed lookup lists the valid names. No
// self-registering static initializers (they vanish when linking static libraries).

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/ranges.h>

#include "config/schema.h"
#include "core/error.h"

namespace normexp::registry {

template <class Factory>
class Registry {
 public:
  struct Entry {
    std::string name;
    std::string help;
    std::vector<config::OptionSpec> options;
    Factory make;
  };

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  void add(Entry entry) {
    if (find(entry.name)) throw std::logic_error("duplicate " + kind_ + " '" + entry.name + "'");
    entries_.push_back(std::move(entry));
  }

  const Entry* find(const std::string& name) const {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const Entry& e) { return e.name == name; });
    return it == entries_.end() ? nullptr : &*it;
  }

  const Entry& get(const std::string& name) const {
    if (const Entry* e = find(name)) return *e;
    throw ConfigError("", kind_, "unknown " + kind_ + " '" + name + "' (valid: " + joined_names() + ")");
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
  }

  std::string joined_names() const {
    return fmt::format("{}", fmt::join(names(), ", "));
  }

  const std::string& kind() const { return kind_; }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::string kind_;
  std::vector<Entry> entries_;
};

}  // namespace normexp::registry
