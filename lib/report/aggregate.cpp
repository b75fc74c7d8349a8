// Filling a table spec from the index: each cell's runs, their mean and spread, and the marks
// of our best and second-best cells.

#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace normexp::report {

namespace {
// Ranks cells with results within each row or column: best and second-best means.
void mark_ours(const TableSpec& spec, std::vector<CellResult>& cells) {
  if (spec.best_within == "none") return;
  std::map<std::string, std::vector<CellResult*>> groups;
  for (auto& c : cells)
    if (c.stats.n > 0)
      groups[spec.best_within == "row" ? c.cell->row : c.cell->column].push_back(&c);
  for (auto& [key, group] : groups) {
    if (group.size() < 2) continue;  // a lone number is not "best" of anything
    std::vector<double> means;
    for (auto* c : group) means.push_back(c->stats.mean);
    std::sort(means.begin(), means.end());
    if (!spec.lower_is_better) std::reverse(means.begin(), means.end());
    const double best = means[0];
    // Ties share a mark; the second-best value is the next distinct one.
    std::optional<double> second;
    for (double m : means)
      if (m != best) {
        second = m;
        break;
      }
    for (auto* c : group) {
      if (c->stats.mean == best)
        c->ours_mark = Mark::Best;
      else if (second && c->stats.mean == *second)
        c->ours_mark = Mark::Second;
    }
  }
}

}  // namespace

Stats aggregate(const std::vector<double>& values) {
  Stats s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

const CellResult* Report::find(const std::string& row, const std::string& column) const {
  for (const auto& c : cells)
    if (c.cell->row == row && c.cell->column == column) return &c;
  return nullptr;
}

Report build_report(const TableSpec& spec, const config::Schema& schema,
                    const std::map<std::string, std::vector<RunRecord>>& index,
                    const ReportOptions& options) {
  Report r;
  r.spec = &spec;
  std::set<std::string> hashes;
  for (const auto& cell : spec.cells) {
    CellResult cr;
    cr.cell = &cell;
    if (cell.supported()) {
      try {
        cr.hash = config::load_experiment(*cell.config, cell.sets_with(options.sets), schema).hash();
      } catch (const ConfigError& e) {
        std::vector<std::string> issues;
        for (const auto& issue : e.issues()) issues.push_back(issue.str());
        cr.config_error = fmt::format("{}", fmt::join(issues, "; "));
      }
    }
    if (!cr.hash.empty()) {
      hashes.insert(cr.hash);
      std::vector<double> values;
      const auto it = index.find(cr.hash);
      // A (hash, seed) pair is one experiment even when two run names hash alike (quickstart
      // is the fmnist cnn9 cwo cell at the grid's size) or a run directory was copied: count
      // it once, from the first directory in path order, so that n is the number of seeds.
      std::map<std::int64_t, const RunRecord*> first_completed;
      if (it != index.end())
        for (const auto& run : it->second)
          if (run.status == "completed") {
            auto& slot = first_completed[run.seed];
            if (!slot || run.dir < slot->dir) slot = &run;
          }
      if (it != index.end())
        for (const auto& run : it->second) {
          if (run.status != "completed") {
            ++cr.other[run.status];
            continue;
          }
          if (first_completed.at(run.seed) != &run) {
            ++cr.other["duplicate of a seed"];
            continue;
          }
          if (auto v = metric_value(run.metrics, spec.metric_of(cell))) {
            values.push_back(*v);
            cr.completed_seeds.push_back(run.seed);
            cr.completed_dirs.push_back(run.dir);
          } else {
            ++cr.other["completed without " + spec.metric_of(cell)];
          }
        }
      cr.stats = aggregate(values);
    }
    r.cells.push_back(std::move(cr));
  }
  mark_ours(spec, r.cells);
  if (options.unmatched)
    for (const auto& [hash, runs] : index)
      if (!hashes.count(hash)) r.unmatched.insert(r.unmatched.end(), runs.begin(), runs.end());
  return r;
}


}  // namespace normexp::report
