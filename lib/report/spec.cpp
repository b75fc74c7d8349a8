#include "report/spec.h"

#include <algorithm>
#include <set>
#include <tuple>

#include <fmt/ranges.h>

#include "config/node.h"
#include "config/schema.h"
#include "core/error.h"

namespace normexp::report {

namespace {

using config::Node;

// Collects every problem of one spec file so that a user fixes them in one pass.
class Reader {
 public:
  std::vector<ConfigIssue> issues;

  void add(const Node& at, const std::string& path, const std::string& message) {
    issues.push_back({at.where(), path, message});
  }

  // Reports keys of `map` that are not in `allowed` (with a did-you-mean).
  void check_keys(const Node& map, const std::string& path, const std::vector<std::string>& allowed) {
    for (const auto& [key, child] : map.map) {
      bool ok = false;
      for (const auto& a : allowed) ok = ok || a == key;
      if (!ok)
        add(child, join(path, key), "unknown key" + config::did_you_mean(key, allowed));
    }
  }

  std::optional<std::string> string(const Node& map, const std::string& path, const std::string& key,
                                    bool required) {
    const Node* n = map.find(key);
    if (!n || n->is_null()) {
      if (required) add(map, join(path, key), "missing (required)");
      return std::nullopt;
    }
    if (n->kind != Node::Kind::Scalar) {
      add(*n, join(path, key), "expected a string, got " + n->describe());
      return std::nullopt;
    }
    return n->scalar;
  }

  std::optional<double> number(const Node& n, const std::string& path) {
    if (n.is_null() || (n.kind == Node::Kind::Scalar && (n.scalar == "-" || n.scalar == "null")))
      return std::nullopt;
    if (n.kind == Node::Kind::Scalar)
      if (auto v = config::parse_scalar(n.scalar, config::ValueType::Float))
        return std::get<double>(*v);
    add(n, path, "expected a number or null, got " + n.describe());
    return std::nullopt;
  }

  std::vector<std::string> strings(const Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (n.is_null()) return out;
    if (n.kind == Node::Kind::Scalar) return {n.scalar};
    if (n.kind != Node::Kind::Seq) {
      add(n, path, "expected a list of strings, got " + n.describe());
      return out;
    }
    for (const auto& e : n.seq) {
      if (e.kind != Node::Kind::Scalar)
        add(e, path, "expected a string, got " + e.describe());
      else
        out.push_back(e.scalar);
    }
    return out;
  }

  std::string choice(const Node& map, const std::string& path, const std::string& key,
                     const std::string& def, const std::vector<std::string>& choices) {
    auto v = string(map, path, key, false);
    if (!v) return def;
    for (const auto& c : choices)
      if (c == *v) return *v;
    add(*map.find(key), join(path, key),
        fmt::format("expected one of {}, got '{}'", fmt::join(choices, ", "), *v));
    return def;
  }

  static std::string join(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "." + b;
  }
};

std::vector<Axis> read_axes(Reader& r, const Node& root, const std::string& key) {
  std::vector<Axis> out;
  const Node* n = root.find(key);
  if (!n || n->kind != Node::Kind::Seq || n->seq.empty()) {
    r.add(n ? *n : root, key, "expected a non-empty list of {id, label}");
    return out;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < n->seq.size(); ++i) {
    const Node& e = n->seq[i];
    const std::string path = key + "[" + std::to_string(i) + "]";
    if (e.kind == Node::Kind::Scalar) {  // shorthand: the id is its own label
      out.push_back({e.scalar, e.scalar});
    } else if (e.is_map()) {
      r.check_keys(e, path, {"id", "label"});
      auto id = r.string(e, path, "id", true);
      auto label = r.string(e, path, "label", false);
      if (id) out.push_back({*id, label ? *label : *id});
    } else {
      r.add(e, path, "expected an id or {id, label}, got " + e.describe());
      continue;
    }
    if (!out.empty() && !seen.insert(out.back().id).second)
      r.add(e, path, "duplicate id '" + out.back().id + "'");
  }
  return out;
}

Mark read_mark(Reader& r, const Node& cell, const std::string& path) {
  const auto m = r.choice(cell, path, "paper_mark", "none", {"none", "best", "second"});
  return m == "best" ? Mark::Best : m == "second" ? Mark::Second : Mark::None;
}

}  // namespace

const Cell* TableSpec::find(const std::string& row, const std::string& column) const {
  for (const auto& c : cells)
    if (c.row == row && c.column == column) return &c;
  return nullptr;
}

const char* mark_name(Mark m) {
  switch (m) {
    case Mark::Best: return "best";
    case Mark::Second: return "second";
    case Mark::None: break;
  }
  return "";
}

std::vector<std::string> spec_names(const std::filesystem::path& tables_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(tables_dir, ec)) {
    // The default is relative: run anywhere but in the checkout, and it is not there.
    throw ConfigError("--tables", "",
                      "no spec folder '" + tables_dir.string() + "' (in " +
                          fs::current_path().string() +
                          "); run normexp from its checkout or pass --tables "
                          "<checkout>/configs/tables");
  }
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(tables_dir)) {
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::filesystem::path resolve_spec_path(const std::string& name_or_path,
                                        const std::filesystem::path& tables_dir) {
  namespace fs = std::filesystem;
  const fs::path p(name_or_path);
  if (fs::exists(p) || p.has_parent_path() || p.extension() == ".yaml" ||
      p.extension() == ".yml")
    return p;
  const fs::path path = tables_dir / (name_or_path + ".yaml");
  if (fs::exists(path)) return path;
  const std::vector<std::string> names = spec_names(tables_dir);
  throw ConfigError("", "table",
                    fmt::format("no spec '{}' in {}{} (specs: {})", name_or_path,
                                tables_dir.string(), config::did_you_mean(name_or_path, names),
                                fmt::join(names, ", ")));
}

TableSpec load_spec(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const Node root = config::load_config_file(path);  // syntax errors carry file:line already
  Reader r;
  TableSpec spec;
  spec.file = path;
  spec.name = path.stem().string();
  if (!root.is_map()) throw ConfigError(root.where(), "", "a table spec must be a mapping");

  r.check_keys(root, "", {"title", "kind", "source", "metric", "best", "best_within", "rows",
                          "columns", "cells", "plot", "note", "claims"});
  spec.title = r.string(root, "", "title", true).value_or("");
  spec.kind = r.choice(root, "", "kind", "table", {"table", "figure"});
  spec.metric = r.string(root, "", "metric", false).value_or("final.test_err");
  spec.lower_is_better = r.choice(root, "", "best", "lower", {"lower", "higher"}) == "lower";
  spec.best_within = r.choice(root, "", "best_within", "row", {"row", "column", "none"});
  spec.note = r.string(root, "", "note", false).value_or("");
  if (const Node* src = root.find("source")) {
    if (!src->is_map()) {
      r.add(*src, "source", "expected {paper, table}, got " + src->describe());
    } else {
      r.check_keys(*src, "source", {"paper", "table"});
      spec.source_paper = r.string(*src, "source", "paper", true).value_or("");
      spec.source_table = r.string(*src, "source", "table", true).value_or("");
    }
  } else {
    r.add(root, "source", "missing (required): {paper, table}");
  }
  if (const Node* plot = root.find("plot")) {
    if (!plot->is_map()) {
      r.add(*plot, "plot", "expected {series: [...]}, got " + plot->describe());
    } else {
      r.check_keys(*plot, "plot", {"series"});
      if (const Node* s = plot->find("series")) spec.plot_series = r.strings(*s, "plot.series");
    }
  }
  spec.rows = read_axes(r, root, "rows");
  spec.columns = read_axes(r, root, "columns");

  auto has = [](const std::vector<Axis>& axes, const std::string& id) {
    for (const auto& a : axes)
      if (a.id == id) return true;
    return false;
  };
  const Node* cells = root.find("cells");
  if (!cells || cells->kind != Node::Kind::Seq) {
    r.add(cells ? *cells : root, "cells", "expected a list of cells");
  } else {
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < cells->seq.size(); ++i) {
      const Node& e = cells->seq[i];
      const std::string p = "cells[" + std::to_string(i) + "]";
      if (!e.is_map()) {
        r.add(e, p, "expected a mapping, got " + e.describe());
        continue;
      }
      r.check_keys(e, p,
                   {"row", "column", "config", "set", "paper", "paper_mark", "status", "metric"});
      Cell c;
      c.where = e.where();
      c.row = r.string(e, p, "row", true).value_or("");
      c.column = r.string(e, p, "column", true).value_or("");
      if (!c.row.empty() && !has(spec.rows, c.row))
        r.add(*e.find("row"), p + ".row", "no row with id '" + c.row + "'");
      if (!c.column.empty() && !has(spec.columns, c.column))
        r.add(*e.find("column"), p + ".column", "no column with id '" + c.column + "'");
      if (!seen.insert({c.row, c.column}).second)
        r.add(e, p, "a second cell for (" + c.row + ", " + c.column + ")");
      if (auto cfg = r.string(e, p, "config", false)) {
        fs::path cp(*cfg);
        if (cp.is_relative()) cp = path.parent_path() / cp;
        cp = cp.lexically_normal();
        if (!fs::exists(cp))
          r.add(*e.find("config"), p + ".config", "no such file: " + cp.string());
        c.config = cp;
      }
      if (const Node* s = e.find("set")) c.sets = r.strings(*s, p + ".set");
      if (const Node* pv = e.find("paper")) c.paper = r.number(*pv, p + ".paper");
      c.paper_mark = read_mark(r, e, p);
      c.status = r.string(e, p, "status", false).value_or("");
      c.metric = r.string(e, p, "metric", false).value_or("");
      if (!c.config && c.status.empty())
        r.add(e, p, "a cell without a config needs a status saying why (e.g. 'unsupported (needs FastAA)')");
      spec.cells.push_back(std::move(c));
    }
  }
  if (const Node* claims = root.find("claims")) {
    if (claims->kind != Node::Kind::Seq) {
      r.add(*claims, "claims", "expected a list of claims, got " + claims->describe());
    } else {
      for (size_t i = 0; i < claims->seq.size(); ++i) {
        const Node& e = claims->seq[i];
        const std::string p = "claims[" + std::to_string(i) + "]";
        if (!e.is_map()) {
          r.add(e, p, "expected a mapping, got " + e.describe());
          continue;
        }
        r.check_keys(e, p,
                     {"id", "text", "section", "kind", "a", "b", "value", "rows", "columns"});
        Claim c;
        c.where = e.where();
        c.id = r.string(e, p, "id", true).value_or("");
        c.text = r.string(e, p, "text", true).value_or("");
        c.section = r.string(e, p, "section", false).value_or("");
        c.kind = r.choice(e, p, "kind", "within",
                          {"within", "at_most", "at_least", "below", "above", "ratio_at_least"});
        // A side: a column id (the shorthand), or {row, column} with either left out.
        auto side = [&](const char* key, bool required) {
          ClaimSide out;
          const Node* n = e.find(key);
          const std::string sp = p + "." + key;
          if (!n || n->is_null()) {
            if (required) r.add(e, sp, "missing (required)");
            return out;
          }
          if (n->kind == Node::Kind::Scalar) {
            out.column = n->scalar;
          } else if (n->is_map()) {
            r.check_keys(*n, sp, {"row", "column"});
            out.row = r.string(*n, sp, "row", false).value_or("");
            out.column = r.string(*n, sp, "column", false).value_or("");
            if (out.empty()) r.add(*n, sp, "a side names a row, a column or both");
          } else {
            r.add(*n, sp, "expected a column id or {row, column}, got " + n->describe());
          }
          if (!out.row.empty() && !has(spec.rows, out.row))
            r.add(*n, sp, "no row with id '" + out.row + "'");
          if (!out.column.empty() && !has(spec.columns, out.column))
            r.add(*n, sp, "no column with id '" + out.column + "'");
          return out;
        };
        c.a = side("a", true);
        c.b = side("b", c.kind == "ratio_at_least");
        // The axis the claim runs over: the one both sides leave free (or none, two cells).
        const bool a_rows = c.a.row.empty(), a_cols = c.a.column.empty();
        if (!c.a.empty() && !c.b.empty() &&
            (a_rows != c.b.row.empty() || a_cols != c.b.column.empty()))
          r.add(e, p, "sides a and b must leave the same axis free (both name a column, both a "
                      "row, or both a cell)");
        if (const Node* v = e.find("value")) {
          c.value = r.number(*v, p + ".value").value_or(0);
        } else if (c.kind == "within" || c.kind == "at_most" || c.kind == "at_least") {
          r.add(e, p, "a '" + c.kind + "' claim needs its tolerance: value");
        } else if (c.kind == "ratio_at_least") {
          r.add(e, p, "a 'ratio_at_least' claim needs its factor: value");
        } else if (c.b.empty()) {
          r.add(e, p, "a '" + c.kind + "' claim without b needs its threshold: value");
        }
        for (auto [key, axes, list, free] :
             {std::tuple<const char*, const std::vector<Axis>*, std::vector<std::string>*, bool>{
                  "rows", &spec.rows, &c.rows, a_rows},
              {"columns", &spec.columns, &c.columns, a_cols}}) {
          const Node* n = e.find(key);
          if (!n) continue;
          *list = r.strings(*n, p + "." + key);
          if (!free && !c.a.empty())
            r.add(*n, p + "." + key,
                  std::string("side a names its ") + (key[0] == 'r' ? "row" : "column") +
                      ": a list of " + key + " needs a claim judged " +
                      (key[0] == 'r' ? "row by row (a: COLUMN)" : "column by column (a: {row: ROW})"));
          for (const auto& id : *list)
            if (!has(*axes, id))
              r.add(*n, p + "." + key,
                    std::string("no ") + (key[0] == 'r' ? "row" : "column") + " with id '" + id + "'");
        }
        spec.claims.push_back(std::move(c));
      }
    }
  }
  if (!r.issues.empty()) throw ConfigError(std::move(r.issues));
  return spec;
}

}  // namespace normexp::report
