#include "core/gnuplot.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <vector>

namespace normexp::gnuplot {

std::string header(const std::string& name) {
  return fmt::format(
      "# gnuplot script written by normexp ({}); render with `gnuplot {}.gp` in this folder\n"
      "set grid\nset key outside right box opaque\n",
      name, name);
}

std::string figure(const std::string& out, const std::string& title, const std::string& xlabel,
                   const std::string& ylabel, const std::string& dat,
                   const std::vector<Curve>& curves, const std::string& settings,
                   const std::string& style) {
  std::vector<std::string> terms;
  for (const auto& c : curves) {
    std::string legend = c.title;
    for (char& ch : legend)
      if (ch == '"') ch = '\'';
    terms.push_back(fmt::format("\"{}\" index {} using {} with {} title \"{}\"", dat, c.index,
                                c.using_, style, legend));
  }
  const std::string plot = curves.empty()
                               ? "plot 0 title \"no data\""
                               : fmt::format("plot {}", fmt::join(terms, ", \\\n     "));
  return fmt::format(
      "reset\nset grid\nset key outside right box opaque\n{}set title \"{}\" noenhanced\n"
      "set xlabel \"{}\" noenhanced\nset ylabel \"{}\" noenhanced\n"
      "set terminal svg size 900,540 dynamic noenhanced\nset output \"{}.svg\"\n{}\n"
      "set terminal png size 900,540 noenhanced\nset output \"{}.png\"\nreplot\nunset output\n",
      settings, title, xlabel, ylabel, out, plot, out);
}

}  // namespace normexp::gnuplot
