#include "core/gnuplot.h"

#include <fmt/format.h>

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
  std::string plot = "plot ";
  for (size_t i = 0; i < curves.size(); ++i) {
    std::string legend = curves[i].title;
    for (char& ch : legend)
      if (ch == '"') ch = '\'';
    plot += fmt::format("{}\"{}\" index {} using {} with {} title \"{}\"", i ? ", \\\n     " : "",
                        dat, curves[i].index, curves[i].using_, style, legend);
  }
  if (curves.empty()) plot = "plot 0 title \"no data\"";
  return fmt::format(
      "reset\nset grid\nset key outside right box opaque\n{}set title \"{}\" noenhanced\n"
      "set xlabel \"{}\" noenhanced\nset ylabel \"{}\" noenhanced\n"
      "set terminal svg size 900,540 dynamic noenhanced\nset output \"{}.svg\"\n{}\n"
      "set terminal png size 900,540 noenhanced\nset output \"{}.png\"\nreplot\nunset output\n",
      settings, title, xlabel, ylabel, out, plot, out);
}

}  // namespace normexp::gnuplot
