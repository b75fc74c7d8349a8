#pragma once
// gnuplot scripts beside the data they plot (reports' learning curves, the geometry
// experiments' trajectories and spectra): every figure is written as SVG and PNG by
// `gnuplot NAME.gp` in the folder that holds the data. One writer, so every figure of
// normexp looks the same.

#include <string>
#include <vector>

namespace normexp::gnuplot {

struct Curve {
  int index;           // data block of the .dat file (blocks end with two blank lines)
  std::string title;   // legend entry (a '"' is replaced by '\'')
  std::string using_;  // columns, e.g. "1:2"
};

// The first lines of a script: where it came from and how to render it.
std::string header(const std::string& name);

// One figure `out`.svg and `out`.png of `curves` from the data file `dat` (a path relative to
// the script). `settings`: extra gnuplot lines before the plot (log scales, ranges). Without
// curves the figure says "no data". Labels are printed as written (noenhanced: metric names
// hold '_').
std::string figure(const std::string& out, const std::string& title, const std::string& xlabel,
                   const std::string& ylabel, const std::string& dat,
                   const std::vector<Curve>& curves, const std::string& settings = "",
                   const std::string& style = "lines");

}  // namespace normexp::gnuplot
