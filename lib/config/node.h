#pragma once
// A YAML document as a plain tree that remembers where every value came from (file and
// line), so that errors found long after parsing (an unknown key, a value out of range, a
// group count that does not divide a channel count) can point at the exact place.
// yaml-cpp marks carry a line but no file name; after `base:` merging and `--set` overrides a
// config mixes several sources, so each node keeps its own.

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace normexp::config {

struct Node {
  enum class Kind { Null, Scalar, Seq, Map };

  Kind kind = Kind::Null;
  std::string scalar;                             // Kind::Scalar: the text as written
  std::vector<Node> seq;                          // Kind::Seq
  std::vector<std::pair<std::string, Node>> map;  // Kind::Map, in document order
  std::string file;                               // source: a path, or "--set a.b=c"
  int line = 0;                                   // 1-based line; 0 when not known

  bool is_map() const { return kind == Kind::Map; }
  bool is_null() const { return kind == Kind::Null; }
  // "file:line", or just file when the line is unknown.
  std::string where() const;
  // Map lookup; nullptr when absent or when this is not a map.
  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  // Map lookup that inserts a Null child (turning a Null node into a Map) when absent.
  Node& get_or_add(std::string_view key);
  // Removes a map key; returns whether it was there.
  bool erase(std::string_view key);
  // Short human description for messages: the scalar text, "a list", "a mapping", "null".
  std::string describe() const;
};

// Parses YAML text. Syntax errors become ConfigError at "source:line".
Node parse_yaml(std::string_view text, const std::string& source);

// Loads a config file and resolves `base:` (a path, or a list of paths, relative to the
// file that names it): bases are loaded recursively and deep-merged in order, then the
// file's own keys are merged on top, and `base` is removed. Missing files, cycles and
// syntax errors are ConfigErrors naming the file (and the `base:` line that referred to it).
Node load_config_file(const std::filesystem::path& path);

// Deep merge: maps merge key by key (recursively), anything else in `src` replaces `dst`.
void deep_merge(Node& dst, const Node& src);

// Applies one `--set a.b.c=value` override. The value is parsed as YAML (so lists like
// [30,60] work); its source is recorded as "--set a.b.c=value". A missing '=' or an empty
// key path is a ConfigError. "~a.b.c" removes a key (error when absent).
void apply_override(Node& root, std::string_view assignment);

}  // namespace normexp::config
