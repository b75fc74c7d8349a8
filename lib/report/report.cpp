#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/fs.h"

namespace normexp::report {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fixed2(double v) { return fmt::format("{:.2f}", v); }

std::string signed2(double v) { return fmt::format("{:+.2f}", v); }

std::string cell_config_display(const Cell& c) {
  return c.config ? fs::proximate(*c.config).string() : "";
}

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

// " (per cell: (row, column) `metric`, ...)" for cells with their own metric.
std::string per_cell_metrics(const TableSpec& spec) {
  std::string out;
  for (const auto& c : spec.cells)
    if (!c.metric.empty())
      out += fmt::format("{}({}, {}) `{}`", out.empty() ? "" : "; ", c.row, c.column, c.metric);
  return out.empty() ? out : " (per cell: " + out + ")";
}

std::string md_marked(const std::string& text, Mark m) {
  return m == Mark::Best ? "**" + text + "**" : m == Mark::Second ? "*" + text + "*" : text;
}

std::string others_text(const CellResult& c) {
  std::string out;
  for (const auto& [status, n] : c.other) out += fmt::format(" (+{} {})", n, status);
  return out;
}

std::string paper_text(const Cell& c) {
  return c.paper ? fixed2(*c.paper) : std::string("–");
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '\\': out += "\\textbackslash{}"; break;
      case '%': case '_': case '&': case '#': case '$': case '{': case '}':
        out += '\\';
        out += ch;
        break;
      case '~': out += "\\textasciitilde{}"; break;
      case '^': out += "\\textasciicircum{}"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string latex_marked(const std::string& text, Mark m) {
  return m == Mark::Best ? "\\textbf{" + text + "}"
         : m == Mark::Second ? "\\textit{" + text + "}"
                             : text;
}

std::string join_sets(const std::vector<std::string>& sets) {
  std::string out;
  for (const auto& s : sets) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::vector<std::string> all_sets(const Cell& c, const std::vector<std::string>& extra) {
  std::vector<std::string> sets = c.sets;
  sets.insert(sets.end(), extra.begin(), extra.end());
  return sets;
}

}  // namespace

std::string shell_quote(const std::string& word) {
  if (!word.empty() &&
      word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "_-.,/=:+@%") == std::string::npos)
    return word;
  std::string out = "'";
  for (char ch : word) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

std::map<std::string, std::vector<RunRecord>> index_results(const fs::path& root) {
  std::map<std::string, std::vector<RunRecord>> index;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return index;
  for (const auto& name_dir : fs::directory_iterator(root, ec)) {
    if (!name_dir.is_directory()) continue;
    for (const auto& hash_dir : fs::directory_iterator(name_dir.path(), ec)) {
      if (!hash_dir.is_directory()) continue;
      for (const auto& seed_dir : fs::directory_iterator(hash_dir.path(), ec)) {
        const auto dirname = seed_dir.path().filename().string();
        if (!seed_dir.is_directory() || dirname.rfind("seed", 0) != 0) continue;
        const auto mpath = seed_dir.path() / "metrics.json";
        if (!fs::exists(mpath)) continue;
        RunRecord rec;
        try {
          rec.metrics = json::parse(read_file(mpath));
        } catch (const std::exception&) {
          continue;
        }
        rec.dir = seed_dir.path();
        rec.name = name_dir.path().filename().string();
        rec.hash = rec.metrics.value("hash", hash_dir.path().filename().string());
        rec.status = rec.metrics.value("status", std::string("unknown"));
        try {
          rec.seed = rec.metrics.contains("seed") ? rec.metrics["seed"].get<std::int64_t>()
                                                  : std::stoll(dirname.substr(4));
        } catch (const std::exception&) {
          continue;
        }
        index[rec.hash].push_back(std::move(rec));
      }
    }
  }
  for (auto& [hash, runs] : index)  // directory order is arbitrary; reports must not be
    std::sort(runs.begin(), runs.end(),
              [](const RunRecord& a, const RunRecord& b) { return a.seed < b.seed; });
  return index;
}

std::optional<double> metric_value(const json& metrics, const std::string& dotted) {
  const json* cur = &metrics;
  std::stringstream ss(dotted);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!cur->is_object() || !cur->contains(part)) return std::nullopt;
    cur = &(*cur)[part];
  }
  if (!cur->is_number()) return std::nullopt;
  const double v = cur->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

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
        cr.hash = config::load_experiment(*cell.config, all_sets(cell, options.sets), schema).hash();
      } catch (const ConfigError& e) {
        for (const auto& issue : e.issues()) cr.config_error += issue.str() + "; ";
      }
    }
    if (!cr.hash.empty()) {
      hashes.insert(cr.hash);
      std::vector<double> values;
      const auto it = index.find(cr.hash);
      if (it != index.end())
        for (const auto& run : it->second) {
          if (run.status != "completed") {
            ++cr.other[run.status];
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

std::string render_markdown(const Report& r) {
  const auto& spec = *r.spec;
  std::string out = fmt::format("## {}\n\n", spec.title);
  const std::string marks =
      spec.best_within == "none"
          ? std::string("Bold / italic: the paper's best / second best.")
          : fmt::format("Bold / italic: best / second best within each {} ({} is better), the "
                        "paper's marks on its numbers, ours on ours.",
                        spec.best_within, spec.lower_is_better ? "lower" : "higher");
  out += fmt::format(
      "Source: file {}, {}. Metric: `{}`{}, ours as mean ± sample std (n = completed seeds); "
      "Δ = ours − paper. {} — = no completed run.\n\n",
      spec.source_paper, spec.source_table, spec.metric, per_cell_metrics(spec), marks);
  out += "| |";
  for (const auto& c : spec.columns) out += " " + c.label + " |";
  out += "\n|---|";
  for (size_t i = 0; i < spec.columns.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& row : spec.rows) {
    out += "| " + row.label + " |";
    for (const auto& col : spec.columns) {
      const CellResult* c = r.find(row.id, col.id);
      std::string text;
      if (!c) {
        text = " ";
      } else {
        const Cell& cell = *c->cell;
        const std::string paper = "paper " + md_marked(paper_text(cell), cell.paper_mark);
        if (!cell.supported()) {
          text = cell.status + "<br>" + paper;
        } else if (!c->config_error.empty()) {
          text = "config error<br>" + paper;
        } else if (c->stats.n == 0) {
          text = "—" + others_text(*c) + "<br>" + paper;
        } else {
          const std::string sd = c->stats.n > 1 ? fixed2(c->stats.std) : "–";
          text = md_marked(fixed2(c->stats.mean), c->ours_mark) + " ± " + sd +
                 fmt::format(" (n={})", c->stats.n) + others_text(*c) + "<br>" + paper;
          if (cell.paper) text += " (Δ " + signed2(c->stats.mean - *cell.paper) + ")";
        }
      }
      out += " " + text + " |";
    }
    out += "\n";
  }
  std::string problems;
  for (const auto& c : r.cells)
    if (!c.config_error.empty())
      problems += fmt::format("- ({}, {}): {}\n", c.cell->row, c.cell->column, c.config_error);
  if (!problems.empty()) out += "\nCells whose config did not resolve:\n" + problems;
  if (!spec.note.empty()) out += "\n" + spec.note + "\n";
  if (!r.unmatched.empty()) {
    out += "\nRuns matching no cell:\n";
    for (const auto& run : r.unmatched)
      out += fmt::format("- {} ({})\n", run.dir.string(), run.status);
  }
  return out;
}

std::string render_csv(const Report& r) {
  std::string out =
      "row,column,config,set,hash,status,n,mean,std,paper,paper_mark,ours_mark,diff,"
      "diverged,running,interrupted\n";
  for (const auto& c : r.cells) {
    const Cell& cell = *c.cell;
    const std::string status = !cell.supported()        ? cell.status
                               : !c.config_error.empty() ? "config error"
                               : c.stats.n == 0          ? "missing"
                                                         : "ok";
    auto count = [&](const char* s) {
      const auto it = c.other.find(s);
      return std::to_string(it == c.other.end() ? 0 : it->second);
    };
    const bool have = c.stats.n > 0;
    out += fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_field(cell.row),
        csv_field(cell.column), csv_field(cell_config_display(cell)),
        csv_field(join_sets(cell.sets)), c.hash, csv_field(status), c.stats.n,
        have ? fmt::format("{:.4f}", c.stats.mean) : "",
        c.stats.n > 1 ? fmt::format("{:.4f}", c.stats.std) : "",
        cell.paper ? fmt::format("{:.2f}", *cell.paper) : "", mark_name(cell.paper_mark),
        mark_name(c.ours_mark),
        have && cell.paper ? fmt::format("{:.4f}", c.stats.mean - *cell.paper) : "",
        count("diverged"), count("running"), count("interrupted"));
  }
  return out;
}

std::string render_latex(const Report& r) {
  const auto& spec = *r.spec;
  std::string out = "% " + latex_escape(spec.name) + ": ours (mean $\\pm$ std, n) / paper\n";
  out += "\\begin{table}[t]\n\\centering\n";
  out += "\\caption{" + latex_escape(spec.title) + " (" + latex_escape(spec.source_table) +
         " of file " + latex_escape(spec.source_paper) + "; ours / paper)}\n";
  out += "\\begin{tabular}{l" + std::string(spec.columns.size(), 'c') + "}\n\\hline\n";
  for (const auto& c : spec.columns) out += " & " + latex_escape(c.label);
  out += " \\\\\n\\hline\n";
  for (const auto& row : spec.rows) {
    out += latex_escape(row.label);
    for (const auto& col : spec.columns) {
      const CellResult* c = r.find(row.id, col.id);
      out += " & ";
      if (!c) continue;
      const Cell& cell = *c->cell;
      const std::string paper =
          cell.paper ? latex_marked(fixed2(*cell.paper), cell.paper_mark) : "--";
      std::string ours;
      if (!cell.supported())
        ours = "n/a";
      else if (c->stats.n == 0)
        ours = "---";
      else
        ours = latex_marked(fixed2(c->stats.mean), c->ours_mark) +
               (c->stats.n > 1 ? " $\\pm$ " + fixed2(c->stats.std) : "") +
               fmt::format(" ({})", c->stats.n);
      out += ours + " / " + paper;
    }
    out += " \\\\\n";
  }
  out += "\\hline\n\\end{tabular}\n\\end{table}\n";
  return out;
}

std::string render_json(const Report& r) {
  const auto& spec = *r.spec;
  json j{{"spec", spec.name},
         {"title", spec.title},
         {"source", {{"paper", spec.source_paper}, {"table", spec.source_table}}},
         {"metric", spec.metric},
         {"cells", json::array()}};
  for (const auto& c : r.cells) {
    const Cell& cell = *c.cell;
    json e{{"row", cell.row},
           {"column", cell.column},
           {"config", cell.config ? json(cell_config_display(cell)) : json(nullptr)},
           {"set", cell.sets},
           {"metric", spec.metric_of(cell)},
           {"hash", c.hash},
           {"status", cell.supported() ? (c.config_error.empty() ? "ok" : "config error")
                                       : cell.status},
           {"n", c.stats.n},
           {"mean", c.stats.n > 0 ? json(c.stats.mean) : json(nullptr)},
           {"std", c.stats.n > 1 ? json(c.stats.std) : json(nullptr)},
           {"seeds", c.completed_seeds},
           {"paper", cell.paper ? json(*cell.paper) : json(nullptr)},
           {"paper_mark", mark_name(cell.paper_mark)},
           {"ours_mark", mark_name(c.ours_mark)},
           {"other", c.other}};
    e["diff"] = c.stats.n > 0 && cell.paper ? json(c.stats.mean - *cell.paper) : json(nullptr);
    j["cells"].push_back(std::move(e));
  }
  if (!r.unmatched.empty()) {
    j["unmatched"] = json::array();
    for (const auto& run : r.unmatched)
      j["unmatched"].push_back({{"dir", run.dir.string()}, {"status", run.status}});
  }
  return j.dump(2) + "\n";
}

std::string render(const Report& r, const std::string& format) {
  if (format == "markdown" || format == "md") return render_markdown(r);
  if (format == "csv") return render_csv(r);
  if (format == "latex" || format == "tex") return render_latex(r);
  if (format == "json") return render_json(r);
  throw ConfigError("--format", "format", "expected markdown, csv, latex or json, got '" + format + "'");
}

std::vector<PlanItem> plan_items(const TableSpec& spec, const config::Schema& schema,
                                 const std::map<std::string, std::vector<RunRecord>>& index,
                                 const PlanOptions& options, std::vector<std::string>& comments) {
  std::vector<PlanItem> items;
  for (const auto& cell : spec.cells) {
    const std::string name = "(" + cell.row + ", " + cell.column + ")";
    if (!cell.supported()) {
      comments.push_back("# skipped " + name + ": " + cell.status);
      continue;
    }
    const auto sets = all_sets(cell, options.sets);
    std::string hash, workload;
    std::int64_t epochs = 0;
    try {
      const auto exp = config::load_experiment(*cell.config, sets, schema);
      hash = exp.hash();
      try {  // classification cells; other tasks have no such workload (estimate: unmatched)
        const auto& data = exp.section("data");
        workload = workload_key(exp.resolved()["model"], exp.section("norm").get_string("name"),
                                exp.section("train").get_int("batch_size"),
                                data.get_string("augment"), data.get_int("cutout"));
        epochs = exp.section("train").get_int("epochs");
      } catch (const std::exception&) {
        workload = "task " + config_task_name(exp);
      }
    } catch (const ConfigError& e) {
      comments.push_back("# skipped " + name + ": config error: " + e.issues().front().str());
      continue;
    }
    const auto it = index.find(hash);
    for (const auto seed : options.seeds) {
      std::string done;
      if (it != index.end())
        for (const auto& run : it->second)
          if (run.seed == seed && (run.status == "completed" || run.status == "diverged"))
            done = run.status;
      if (done == "completed") continue;
      if (done == "diverged") {  // re-running gives the same divergence; a human decides
        comments.push_back(fmt::format("# not planned {} seed {}: diverged", name, seed));
        continue;
      }
      std::string cmd = options.binary + " run " + shell_quote(cell_config_display(cell));
      for (const auto& s : sets) cmd += " --set " + shell_quote(s);
      cmd += fmt::format(" --seed {}", seed);
      if (!options.results.empty()) cmd += " --output " + shell_quote(options.results);
      cmd += " --resume";
      items.push_back({&cell, seed, cmd, workload, epochs});
    }
  }
  return items;
}

std::string render_plan(const TableSpec& spec, const std::vector<PlanItem>& items,
                        const std::vector<std::string>& comments, const PlanOptions& options) {
  std::string out;
  if (!options.slurm) {
    out += fmt::format("# {}: {} missing (cell, seed) runs\n", spec.name, items.size());
    for (const auto& c : comments) out += c + "\n";
    for (const auto& i : items) out += i.command + "\n";
    return out;
  }
  out += "#!/bin/bash\n";
  out += fmt::format("# normexp plan {}: {} missing (cell, seed) runs; submit with sbatch.\n",
                     spec.name, items.size());
  for (const auto& c : comments) out += c + "\n";
  if (items.empty()) return out + "# nothing to run\n";
  out += fmt::format("#SBATCH --job-name=normexp-{}\n#SBATCH --array=0-{}\n", spec.name,
                     items.size() - 1);
  out += "#SBATCH --output=slurm-%A_%a.out\nset -euo pipefail\ncmds=(\n";
  for (const auto& i : items) out += "  " + shell_quote(i.command) + "\n";
  out += ")\neval \"${cmds[$SLURM_ARRAY_TASK_ID]}\"\n";
  return out;
}

std::string config_task_name(const config::Experiment& exp) {
  const auto j = exp.resolved();
  return j.contains("task") && j["task"].contains("name") ? j["task"]["name"].get<std::string>()
                                                            : std::string("classify");
}

std::string workload_key(const json& model, const std::string& norm, std::int64_t batch_size,
                         const std::string& augment, std::int64_t cutout) {
  return fmt::format("{} {} b{} {}{}", model.dump(), norm, batch_size, augment,
                     cutout > 0 ? fmt::format(" cutout{}", cutout) : "");
}

std::vector<std::string> estimate_plan(const std::vector<PlanItem>& items,
                                       const std::vector<json>& bench_rows) {
  struct Rate {
    double images_per_s = 0;
    std::int64_t train_size = 0;
    std::string device;
  };
  std::map<std::string, Rate> rates;
  for (const auto& row : bench_rows) {
    const auto& data = row.at("estimate");
    const std::string key = workload_key(
        row.at("model"), row.at("norm").get<std::string>(), row.at("batch_size").get<std::int64_t>(),
        row.at("augment").get<std::string>(),
        row.contains("cutout") ? row["cutout"].get<std::int64_t>() : 0);
    rates[key] = {row.at("images_per_s").get<double>(), data.at("train_size").get<std::int64_t>(),
                  row.value("device", std::string("?"))};
  }
  struct Group {
    std::int64_t runs = 0;
    double hours = 0;
  };
  std::map<std::string, Group> groups;
  std::set<std::string> missing;
  double total = 0;
  std::int64_t matched = 0;
  std::set<std::string> devices;
  for (const auto& item : items) {
    const auto it = rates.find(item.workload);
    if (it == rates.end() || it->second.images_per_s <= 0) {
      missing.insert(item.workload);
      continue;
    }
    const double hours = static_cast<double>(item.epochs) *
                         static_cast<double>(it->second.train_size) /
                         it->second.images_per_s / 3600.0;
    auto& g = groups[item.workload];
    ++g.runs;
    g.hours += hours;
    total += hours;
    ++matched;
    devices.insert(it->second.device);
  }
  std::vector<std::string> out;
  std::string on;
  for (const auto& d : devices) on += (on.empty() ? "" : ", ") + d;
  out.push_back(fmt::format("# estimate: {} of {} planned runs, {:.1f} device-hours of training "
                            "steps on {} (evaluation not included)",
                            matched, items.size(), total, on.empty() ? "-" : on));
  for (const auto& [key, g] : groups)
    out.push_back(fmt::format("#   {:>4} runs x {:6.2f} h  {}", g.runs, g.hours / g.runs, key));
  for (const auto& key : missing)
    out.push_back("#   no bench row for: " + key + " (normexp bench one of its cells)");
  return out;
}

std::string write_plots(const Report& r, const fs::path& dir) {
  const auto& spec = *r.spec;
  std::vector<std::string> series = spec.plot_series;
  if (series.empty()) series = {"train_loss", "test_err"};
  std::string dat, plots_of_series;
  int block = 0;
  std::vector<std::pair<int, std::string>> blocks;  // gnuplot index, title
  for (const auto& c : r.cells) {
    if (c.completed_dirs.empty()) continue;
    // Per-epoch mean over the completed seeds (all of them ran the same epochs).
    std::map<std::int64_t, std::vector<std::vector<double>>> by_epoch;
    for (const auto& d : c.completed_dirs) {
      std::ifstream in(d / "history.jsonl");
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        json h;
        try {
          h = json::parse(line);
        } catch (const std::exception&) {
          continue;
        }
        std::vector<double> vals;
        for (const auto& s : series) vals.push_back(metric_value(h, s).value_or(NAN));
        by_epoch[h.value("epoch", std::int64_t{0})].push_back(vals);
      }
    }
    std::string title;
    for (const auto& a : spec.rows)
      if (a.id == c.cell->row) title = a.label;
    for (const auto& a : spec.columns)
      if (a.id == c.cell->column) title += ", " + a.label;
    dat += "# " + title + fmt::format(" (n={})\n# epoch", c.stats.n);
    for (const auto& s : series) dat += " " + s;
    dat += "\n";
    for (const auto& [epoch, rows] : by_epoch) {
      dat += std::to_string(epoch);
      for (size_t k = 0; k < series.size(); ++k) {
        double sum = 0;
        for (const auto& row : rows) sum += row[k];
        dat += fmt::format(" {:.6g}", sum / rows.size());
      }
      dat += "\n";
    }
    dat += "\n\n";  // gnuplot: two blank lines end a data block (`index`)
    std::string safe;
    for (char ch : title) safe += ch == '"' ? '\'' : ch;
    blocks.push_back({block++, safe});
  }
  fs::create_directories(dir);
  const std::string stem = spec.name;
  write_file_atomic(dir / (stem + ".dat"), dat);
  std::string gp = "# gnuplot script written by normexp plot; run `gnuplot " + stem +
                   ".gp` in this folder\nset key top right box opaque\nset grid\nset xlabel \"epoch\"\n";
  for (size_t k = 0; k < series.size(); ++k) {
    std::string plot = "plot ";
    for (size_t b = 0; b < blocks.size(); ++b)
      plot += fmt::format("{}\"{}.dat\" index {} using 1:{} with lines title \"{}\"",
                          b ? ", \\\n     " : "", stem, blocks[b].first, k + 2, blocks[b].second);
    if (blocks.empty()) plot = "plot 0 title \"no completed runs\"";
    const std::string out = stem + "_" + series[k];
    const std::string ylabel = series[k] == "train_loss" ? "training loss"
                               : series[k] == "test_err" ? "test error (%)"
                                                         : series[k];
    // noenhanced: labels hold '_' (metric names), which enhanced text would subscript.
    gp += fmt::format(
        "set title \"{}: {}\"\nset ylabel \"{}\"\nset terminal svg size 900,540 dynamic noenhanced\n"
        "set output \"{}.svg\"\n{}\nset terminal png size 900,540 noenhanced\nset output \"{}.png\"\n"
        "replot\nunset output\n",
        spec.name, ylabel, ylabel, out, plot, out);
  }
  write_file_atomic(dir / (stem + ".gp"), gp);
  std::string summary = fmt::format("wrote {} and {} ({} curves)\n", (dir / (stem + ".dat")).string(),
                                    (dir / (stem + ".gp")).string(), blocks.size());
  if (blocks.empty()) return summary + "no completed runs yet: nothing to render\n";
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return summary + "gnuplot not found: install it (Debian: apt-get install gnuplot-nox) and run `cd " +
           dir.string() + " && gnuplot " + stem + ".gp`\n";
  const std::string cmd = "cd " + shell_quote(dir.string()) + " && gnuplot " + shell_quote(stem + ".gp");
  if (std::system(cmd.c_str()) != 0) throw RunError("gnuplot failed on " + (dir / (stem + ".gp")).string());
  for (const auto& s : series)
    summary += fmt::format("wrote {}.png and .svg\n", (dir / (stem + "_" + s)).string());
  return summary;
}

}  // namespace normexp::report
