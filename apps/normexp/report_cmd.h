#pragma once
// `normexp report|plan|plot`: paper tables from a results root (lib/report does the work).

#include <CLI/CLI.hpp>

namespace normexp {

// Adds the `report`, `plan` and `plot` subcommands. Like add_data_commands, the chosen
// command runs from CLI11's callback inside app.parse() and stores its exit code (0 done,
// 1 runtime error, 2 bad spec/config/usage) in `exit_code`, untouched when none was given.
void add_report_commands(CLI::App& app, int& exit_code);

}  // namespace normexp
