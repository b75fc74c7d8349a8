#include "config/node.h"

#include <yaml-cpp/yaml.h>
#if __has_include(<yaml-cpp/depthguard.h>)
#include <yaml-cpp/depthguard.h>
#endif

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"
#include "core/utf8.h"

namespace normexp::config {

namespace fs = std::filesystem;

std::string Node::where() const {
  if (line > 0) return file + ":" + std::to_string(line);
  return file;
}

const Node* Node::find(std::string_view key) const {
  if (!is_map()) return nullptr;
  for (const auto& [k, v] : map) {
    if (k == key) return &v;
  }
  return nullptr;
}

Node* Node::find(std::string_view key) {
  return const_cast<Node*>(static_cast<const Node&>(*this).find(key));
}

Node& Node::get_or_add(std::string_view key) {
  if (is_null()) kind = Kind::Map;
  // Adding a child to a scalar or list would be silently invisible; callers replace those.
  if (!is_map())
    throw std::logic_error("config: get_or_add(\"" + std::string(key) + "\") on a non-map");
  if (Node* existing = find(key)) return *existing;
  Node child;
  child.file = file;
  map.emplace_back(std::string(key), std::move(child));
  return map.back().second;
}

bool Node::erase(std::string_view key) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first == key) {
      map.erase(it);
      return true;
    }
  }
  return false;
}

std::string Node::describe() const {
  switch (kind) {
    case Kind::Scalar:
      return scalar;
    case Kind::Seq:
      return "a list";
    case Kind::Map:
      return "a mapping";
    case Kind::Null:
      break;
  }
  return "null";
}

namespace {

int line_of(const YAML::Mark& mark) {
  return mark.line >= 0 ? mark.line + 1 : 0;
}

// yaml-cpp already caps nesting while parsing; this also guards against alias loops.
constexpr int kMaxDepth = 200;
// yaml-cpp shares an aliased node; converting copies it at every use. Nine levels of nine
// aliases ("billion laughs") would copy 9^9 nodes: the copy stops at this many (a large table
// spec has a few thousand).
constexpr std::int64_t kMaxNodes = 200000;

struct ConvertState {
  std::string source;
  std::int64_t nodes = 0;
};

void check_utf8(const std::string& text, const ConvertState& st, int line, const std::string& path,
                const char* what) {
  if (auto at = invalid_utf8_at(text))
    throw ConfigError(st.source + ":" + std::to_string(line), path,
                      fmt::format("{} is not valid UTF-8 (byte 0x{:02X} at offset {})", what,
                                  static_cast<unsigned char>(text[*at]), *at));
}

std::string child_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

Node convert(const YAML::Node& y, ConvertState& st, int line, int depth, const std::string& path) {
  const std::string& source = st.source;
  if (depth > kMaxDepth)  // the path would be hundreds of "[0]": name where it starts
    throw ConfigError(source + ":" + std::to_string(line), "",
                      fmt::format("nested more than {} levels deep (a config nests a few)",
                                  kMaxDepth));
  if (++st.nodes > kMaxNodes)
    throw ConfigError(source, "",
                      fmt::format("the document expands to more than {} nodes (aliases of "
                                  "aliases?); refusing to load it",
                                  kMaxNodes));
  Node n;
  n.file = source;
  n.line = line;
  switch (y.Type()) {
    case YAML::NodeType::Scalar:
      n.kind = Node::Kind::Scalar;
      n.scalar = y.Scalar();
      check_utf8(n.scalar, st, line, path, "the value");
      break;
    case YAML::NodeType::Sequence:
      n.kind = Node::Kind::Seq;
      for (const auto& item : y) {
        n.seq.push_back(convert(item, st, line_of(item.Mark()), depth + 1,
                                path + "[" + std::to_string(n.seq.size()) + "]"));
      }
      break;
    case YAML::NodeType::Map:
      n.kind = Node::Kind::Map;
      for (const auto& kv : y) {
        const int key_line = line_of(kv.first.Mark());
        const std::string key_where = source + ":" + std::to_string(key_line);
        if (!kv.first.IsScalar()) {
          throw ConfigError(key_where, "", "mapping keys must be plain names");
        }
        const std::string& key = kv.first.Scalar();
        check_utf8(key, st, key_line, path, "the key");
        if (n.find(key) != nullptr) {
          throw ConfigError(key_where, child_path(path, key), "duplicate key");
        }
        // Block maps and lists start on the line after their key, and an empty value has no
        // useful mark; the key's line is where a reader looks for them.
        const int value_line = kv.second.IsScalar() ? line_of(kv.second.Mark()) : key_line;
        n.map.emplace_back(key, convert(kv.second, st, value_line, depth + 1, child_path(path, key)));
      }
      break;
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return n;
}

void set_source(Node& n, const std::string& source) {
  n.file = source;
  n.line = 0;
  for (auto& item : n.seq) set_source(item, source);
  for (auto& kv : n.map) set_source(kv.second, source);
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Loads files recursively, remembering the chain of files being loaded so that a file that
// (indirectly) names itself as a base is reported instead of recursing forever. A diamond
// (two bases sharing a base) is fine: only the current chain counts.
class Loader {
 public:
  Node load(const fs::path& path, const Node* referrer) {
    const std::string display = path.string();
    const std::string identity = identity_of(path);
    for (std::size_t i = 0; i < chain_.size(); ++i) {
      if (chain_[i].first != identity) continue;
      std::string cycle;
      for (std::size_t j = i; j < chain_.size(); ++j) cycle += chain_[j].second + " -> ";
      cycle += display;
      throw ConfigError(referrer ? referrer->where() : display, referrer ? "base" : "",
                        "base cycle: " + cycle);
    }

    std::string text;
    if (std::string reason; !read_text(path, text, reason)) {
      if (referrer) {
        throw ConfigError(referrer->where(), "base",
                          "cannot read config file '" + display + "': " + reason);
      }
      throw ConfigError(display, "", "cannot read config file: " + reason);
    }

    Node root = parse_yaml(text, display);
    if (root.is_null() && referrer == nullptr)
      throw ConfigError(display, "",
                        "the config is empty (or only comments): it would run every default "
                        "(200 epochs of a CNN on synthetic data); write the experiment, or a "
                        "base: to start from");
    if (root.is_null()) {
      root.kind = Node::Kind::Map;  // an empty file is an empty config
      root.line = 0;
    }
    if (!root.is_map()) {
      throw ConfigError(root.where(), "",
                        "the top level of a config must be a mapping, got " + quoted(root));
    }

    const Node* base = root.find("base");
    if (base == nullptr) return root;

    std::vector<const Node*> refs;
    if (base->kind == Node::Kind::Scalar) {
      refs.push_back(base);
    } else if (base->kind == Node::Kind::Seq) {
      for (const Node& item : base->seq) refs.push_back(&item);
    } else {
      throw ConfigError(base->where(), "base",
                        "expected a path or a list of paths, got " + quoted(*base));
    }

    chain_.emplace_back(identity, display);
    Node merged;
    merged.kind = Node::Kind::Map;
    merged.file = root.file;
    merged.line = root.line;
    for (const Node* ref : refs) {
      if (ref->kind != Node::Kind::Scalar || ref->scalar.empty()) {
        throw ConfigError(ref->where(), "base", "expected a path, got " + quoted(*ref));
      }
      const fs::path base_path = (path.parent_path() / ref->scalar).lexically_normal();
      deep_merge(merged, load(base_path, ref));
    }
    chain_.pop_back();

    root.erase("base");
    deep_merge(merged, root);
    return merged;
  }

 private:
  static std::string quoted(const Node& n) {
    return n.kind == Node::Kind::Scalar ? "'" + n.scalar + "'" : n.describe();
  }

  static std::string identity_of(const fs::path& path) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(path, ec);
    if (ec) canonical = fs::absolute(path, ec).lexically_normal();
    return canonical.string();
  }

  static bool read_text(const fs::path& path, std::string& text, std::string& reason) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      reason = "is a directory";
      return false;
    }
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      reason = errno != 0 ? std::strerror(errno) : "cannot open";
      return false;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
      reason = "read error";
      return false;
    }
    text = buf.str();
    return true;
  }

  std::vector<std::pair<std::string, std::string>> chain_;  // (identity, as displayed)
};

}  // namespace

namespace {
// YAML forbids tabs in indentation, and yaml-cpp's message does not say so: name the first
// line with a tab (the error's own line when it has one).
std::string tab_hint(std::string_view text, int error_line) {
  int first = 0, line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
    } else if (text[i] == '\t' && (first == 0 || line == error_line)) {
      first = line;
      if (line == error_line) break;
    }
  }
  if (first == 0) return "";
  return " (line " + std::to_string(first) + " has a tab: YAML indents with spaces only)";
}
}  // namespace

Node parse_yaml(std::string_view text, const std::string& source) {
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(text));
#if __has_include(<yaml-cpp/depthguard.h>)
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp >= 0.7 says only "bad file"
    const int line = line_of(e.mark);
    throw ConfigError(line > 0 ? source + ":" + std::to_string(line) : source, "",
                      fmt::format("invalid YAML: nested more than {} levels deep (a config "
                                  "nests a few)",
                                  e.depth()));
#endif
  } catch (const YAML::Exception& e) {
    const int line = line_of(e.mark);
    throw ConfigError(line > 0 ? source + ":" + std::to_string(line) : source, "",
                      "invalid YAML: " + e.msg + tab_hint(text, line));
  }
  ConvertState st{source};
  return convert(doc, st, doc.IsDefined() ? line_of(doc.Mark()) : 0, 0, "");
}

Node load_config_file(const fs::path& path) {
  return Loader().load(path, nullptr);
}

void deep_merge(Node& dst, const Node& src) {
  if (dst.is_map() && src.is_map()) {
    for (const auto& [key, value] : src.map) {
      if (Node* existing = dst.find(key)) {
        deep_merge(*existing, value);
      } else {
        dst.map.emplace_back(key, value);
      }
    }
    return;
  }
  dst = src;
}

void apply_override(Node& root, std::string_view assignment) {
  const std::string source = "--set " + std::string(assignment);
  // "~a.b" removes a key (Hydra's syntax), e.g. options of a base's scheme after switching
  // norm.name.
  if (!assignment.empty() && assignment.front() == '~') {
    const std::string key(trim(assignment.substr(1)));
    const std::vector<std::string> parts = split_path(key);
    Node* cur = &root;
    for (std::size_t i = 0; cur != nullptr && i + 1 < parts.size(); ++i) cur = cur->find(parts[i]);
    if (parts.empty() || parts.back().empty() || cur == nullptr || !cur->erase(parts.back()))
      throw ConfigError(source, key, "cannot remove: no such key in the config");
    return;
  }
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    throw ConfigError(source, "", "expected key=value (e.g. --set optim.lr=0.1)");
  }
  const std::string key(trim(assignment.substr(0, eq)));
  const std::vector<std::string> parts = split_path(key);
  for (const auto& part : parts) {
    if (part.empty()) {
      throw ConfigError(source, key, key.empty() ? "empty key" : "empty component in key path");
    }
  }

  Node value;
  try {
    value = parse_yaml(assignment.substr(eq + 1), source);
  } catch (const ConfigError& e) {
    throw ConfigError(source, key, e.issues().front().message);
  }
  set_source(value, source);

  if (!root.is_map() && !root.is_null()) root = Node{};
  if (root.is_null()) root.kind = Node::Kind::Map;
  Node* cur = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    Node* next = cur->find(parts[i]);
    if (next == nullptr) next = &cur->get_or_add(parts[i]);
    // A scalar in the way is replaced by a map; validation then reports the odd key, which
    // is clearer than refusing the override here.
    if (!next->is_map()) {
      *next = Node{};
      next->kind = Node::Kind::Map;
      next->file = source;
    }
    cur = next;
  }
  cur->get_or_add(parts.back()) = std::move(value);
}

}  // namespace normexp::config
