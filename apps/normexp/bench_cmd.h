#pragma once
// `normexp bench norms`: Markou §5.5's overhead of BCN against LayerNorm / BatchNorm
// (lib/experiments/overhead.h does the work). Same convention as add_data_commands.

#include <CLI/CLI.hpp>

namespace normexp {

void add_bench_commands(CLI::App& app, int& exit_code);

}  // namespace normexp
