#pragma once
// Table specs (configs/tables/*.yaml): which paper table a report reproduces, and for each
// cell the experiment (config + --set overrides) that fills it and the number the paper
// reports. Validation is as strict as experiment configs: unknown keys, wrong types and
// dangling row/column ids are ConfigErrors with file:line, all collected at once.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace normexp::report {

// The paper's (and our) emphasis of a cell: bold = best, italic = second best.
enum class Mark { None, Best, Second };

struct Axis {
  std::string id;     // referenced by cells
  std::string label;  // shown in the header
};

struct Cell {
  std::string row, column;             // Axis ids
  std::optional<std::filesystem::path> config;  // resolved against the spec file; none = unsupported
  std::vector<std::string> sets;       // --set overrides, in order
  std::optional<double> paper;         // null where the paper gives no number ("-")
  Mark paper_mark = Mark::None;
  std::string status;                  // "" (supported) or why not, e.g. "unsupported (needs FastAA)"
  std::string where;                   // file:line of the cell, for messages
  // The metric of this cell when it differs from the table's (tables whose cells are
  // different quantities: iterations, λ_max, condition number). Empty: the table's.
  std::string metric;
  // A cell runs when it has a config and no status (a status keeps the config for later).
  bool supported() const { return config.has_value() && status.empty(); }
  // The cell's --sets followed by `extra` (a report's or plan's own --set).
  std::vector<std::string> sets_with(const std::vector<std::string>& extra) const {
    std::vector<std::string> all = sets;
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  }
  // The config's path relative to the working directory ("" when there is none).
  std::string config_display() const {
    return config ? std::filesystem::proximate(*config).string() : "";
  }
};

// One side of a claim: a cell, or a whole row or column of cells. A side that names only a
// column stands for that column in every row (the claim is judged row by row), one that names
// only a row for that row in every column; both sides leave the same axis free, or none.
struct ClaimSide {
  std::string row, column;  // axis ids; at most one empty
  bool empty() const { return row.empty() && column.empty(); }
};

// One of the paper's claims about a table, stated so that `normexp report` can judge it from
// the runs, as a predicate over the means (completed seeds, each cell's metric) of side `a`
// and side `b`, d = a - b (d = a when there is no b: a compared with a threshold):
//   within: |d| <= value    at_most: d <= value    at_least: d >= value
//   below: d < value        above: d > value       (value 0 unless given)
//   ratio_at_least: a / b >= value (b required, its mean > 0)
// judged in every row (or column) that both sides leave free, or the listed ones.
struct Claim {
  std::string id, text, section;  // the paper's wording and where it says so
  std::string kind;               // within | at_most | at_least | below | above | ratio_at_least
  ClaimSide a, b;                 // b empty: a against `value`
  double value = 0;
  std::vector<std::string> rows;     // a row-by-row claim: empty = every row with both cells
  std::vector<std::string> columns;  // a column-by-column claim: likewise
  std::string where;                 // spec file:line
};

struct TableSpec {
  std::string name;         // file stem, e.g. ikami_table4
  std::filesystem::path file;
  std::string title;
  std::string kind = "table";      // table | figure
  std::string source_paper, source_table;  // e.g. "004_68789034aff0fade.txt", "Table 4"
  std::string metric = "final.test_err";   // dotted path into metrics.json
  bool lower_is_better = true;
  std::string best_within = "row";         // row | column | none: where marks are ranked
  std::vector<Axis> rows, columns;
  std::vector<Cell> cells;
  std::vector<std::string> plot_series;    // history.jsonl keys to plot (figure specs)
  std::string note;
  std::vector<Claim> claims;

  // The metric a cell reads: its own, else the table's.
  const std::string& metric_of(const Cell& c) const { return c.metric.empty() ? metric : c.metric; }
  // nullptr when the (row, column) pair has no cell.
  const Cell* find(const std::string& row, const std::string& column) const;
};

// Loads and validates a spec. Config paths in the spec are relative to the spec file.
TableSpec load_spec(const std::filesystem::path& path);

// "ikami_table4" -> <tables_dir>/ikami_table4.yaml; anything that names an existing file (or
// has a .yaml suffix or a slash) is taken as a path. A name with no spec in tables_dir is a
// ConfigError listing the specs there (with a did-you-mean).
std::filesystem::path resolve_spec_path(const std::string& name_or_path,
                                        const std::filesystem::path& tables_dir);

// The spec names (file stems, sorted) in tables_dir; a ConfigError at --tables when it is not
// a folder (the default, configs/tables, is relative to where normexp runs).
std::vector<std::string> spec_names(const std::filesystem::path& tables_dir);

const char* mark_name(Mark m);  // "", "best", "second"

}  // namespace normexp::report
