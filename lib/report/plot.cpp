// Learning-curve plots: a gnuplot data file and script per report.

#include "report/report.h"

#include <fstream>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/gnuplot.h"

namespace normexp::report {

namespace fs = std::filesystem;
using nlohmann::json;

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
    dat += series.empty() ? "\n" : fmt::format(" {}\n", fmt::join(series, " "));
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
    blocks.push_back({block++, title});
  }
  fs::create_directories(dir);
  const std::string stem = spec.name;
  write_file_atomic(dir / (stem + ".dat"), dat);
  std::string gp = gnuplot::header(stem);
  for (size_t k = 0; k < series.size(); ++k) {
    std::vector<gnuplot::Curve> curves;
    for (const auto& [index, title] : blocks)
      curves.push_back({index, title, fmt::format("1:{}", k + 2)});
    const std::string ylabel = series[k] == "train_loss" ? "training loss"
                               : series[k] == "test_err" ? "test error (%)"
                                                         : series[k];
    gp += gnuplot::figure(stem + "_" + series[k], spec.name + ": " + ylabel, "epoch", ylabel,
                          stem + ".dat", curves);
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
