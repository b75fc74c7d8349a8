#pragma once
// `normexp data prepare|fetch`: getting CIFAR onto disk (lib/data/prepare.h does the work);
// `normexp data preview|bench`: a picture and the cost of the augmentation (lib/train).

#include <CLI/CLI.hpp>

namespace normexp {

// Adds the `data` subcommand and its `prepare`, `fetch`, `preview` and `bench` subcommands to
// `app`. The chosen command runs from CLI11's callback at the end of app.parse(); it reports its
// own errors on stderr and stores its exit code (0 done, 1 failed, 2 bad config) in
// `exit_code`, which is left untouched
// when no data command was given. So main needs only: `int data_exit = -1;
// add_data_commands(app, data_exit);` before parsing and `if (data_exit >= 0) return
// data_exit;` after it.
void add_data_commands(CLI::App& app, int& exit_code);

}  // namespace normexp
