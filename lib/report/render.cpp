// Rendering a report: Markdown, CSV, LaTeX and JSON, our numbers beside the paper's.

#include "report/report.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace normexp::report {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
std::string fixed2(double v) { return fmt::format("{:.2f}", v); }

std::string signed2(double v) { return fmt::format("{:+.2f}", v); }

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
}  // namespace

std::string render_markdown(const Report& r) {
  const auto& spec = *r.spec;
  std::string out = fmt::format("## {}\n\n", spec.title);
  // Tables of our own (Fashion-MNIST versions of a paper's claim) have no paper numbers: their
  // cells then show ours alone, not a "paper –" under every one.
  const bool has_paper = std::any_of(spec.cells.begin(), spec.cells.end(), [](const Cell& c) {
    return c.paper || c.paper_mark != Mark::None;
  });
  const std::string marks =
      spec.best_within == "none"
          ? std::string(has_paper ? "Bold / italic: the paper's best / second best. " : "")
          : fmt::format("Bold / italic: best / second best within each {} ({} is better){}. ",
                        spec.best_within, spec.lower_is_better ? "lower" : "higher",
                        has_paper ? ", the paper's marks on its numbers, ours on ours" : "");
  out += fmt::format(
      "Source: file {}, {}. Metric: `{}`{}, ours as mean ± sample std (n = completed seeds){} "
      "{}— = no completed run.\n\n",
      spec.source_paper, spec.source_table, spec.metric, per_cell_metrics(spec),
      has_paper ? "; Δ = ours − paper." : "; the paper gives no numbers for this table.", marks);
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
        const std::string paper =
            has_paper ? "<br>paper " + md_marked(paper_text(cell), cell.paper_mark) : "";
        if (!cell.supported()) {
          text = cell.status + paper;
        } else if (!c->config_error.empty()) {
          text = "config error" + paper;
        } else if (c->stats.n == 0) {
          text = "—" + others_text(*c) + paper;
        } else {
          const std::string sd = c->stats.n > 1 ? fixed2(c->stats.std) : "–";
          text = md_marked(fixed2(c->stats.mean), c->ours_mark) + " ± " + sd +
                 fmt::format(" (n={})", c->stats.n) + others_text(*c) + paper;
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
        csv_field(cell.column), csv_field(cell.config_display()),
        csv_field(fmt::format("{}", fmt::join(cell.sets, " "))), c.hash, csv_field(status), c.stats.n,
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
           {"config", cell.config ? json(cell.config_display()) : json(nullptr)},
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

}  // namespace normexp::report
