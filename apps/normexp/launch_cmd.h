#pragma once
// `normexp launch PLAN`: runs the commands of a plan (`normexp plan` without --slurm) on one
// machine, N at a time, each on its own GPU (CUDA_VISIBLE_DEVICES), continuing past failures
// and listing them at the end. Same convention as add_data_commands.

#include <CLI/CLI.hpp>

namespace normexp {

void add_launch_command(CLI::App& app, int& exit_code);

}  // namespace normexp
