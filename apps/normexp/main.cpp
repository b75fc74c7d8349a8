// normexp: thin command-line front end. Parses options, calls the library, maps errors to
// exit codes (documented in --help and the README).
#include <torch/torch.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "config/experiment.h"
#include "core/error.h"
#include "backend/torch_info.h"
#include "core/version.h"
#include "registry/builtin.h"
#include "backend/device.h"
#include "backend/launch.h"
#include "bench_cmd.h"
#include "guarded.h"
#include "compose/run.h"

#include "data_cmd.h"
#include "launch_cmd.h"
#include "report_cmd.h"

namespace {

using namespace normexp;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitConfig = 2;
constexpr int kExitRunExists = 3;
constexpr int kExitDiverged = 4;
constexpr int kExitInterrupted = 130;

const char* kExitCodes =
    "Exit codes: 0 completed, 1 runtime error (data, I/O), 2 bad config or usage,\n"
    "3 results directory already holds this run (or another process is writing it),\n"
    "4 diverged (non-finite loss), 130 interrupted (SIGINT/SIGTERM: checkpoint written,\n"
    "status 'interrupted'); a second signal exits at once with 128 + signal (130, 143),\n"
    "leaving status 'running': --resume continues from the last checkpoint.";

struct ConfigArgs {
  std::string config;
  std::vector<std::string> sets, overrides;  // --set's values; KEY=VALUE after the config
  std::optional<int64_t> seed;
  std::string device, output, progress;
  bool resume = false;
  const CLI::App* command = nullptr;
  const CLI::Option* set_option = nullptr;
  const CLI::Option* overrides_option = nullptr;
};

void add_config_args(CLI::App* cmd, ConfigArgs& a) {
  a.command = cmd;
  cmd->add_option("config", a.config, "experiment YAML file")->required()->check(CLI::ExistingFile);
  a.overrides_option =
      cmd->add_option("overrides", a.overrides,
                      "KEY=VALUE or ~KEY after the config, as Hydra takes them: the same as "
                      "--set KEY=VALUE (Hydra's +KEY and ++KEY are KEY: every option exists)");
  a.set_option =
      cmd->add_option("--set", a.sets,
                      "override a config key, typed by its declared option: --set optim.lr=0.05 "
                      "--set schedule.milestones=[100,150] (repeatable; with the KEY=VALUE "
                      "arguments, applied in the order written)")
          ->allow_extra_args(false);
  cmd->add_option("--seed", a.seed, "run seed (overrides the config's seed)");
}

// --set values and KEY=VALUE arguments in the order they were written: CLI11 keeps each
// option's values apart, and its parse order (one entry per value) says how they interleave.
std::vector<std::string> overrides_in_order(const ConfigArgs& a) {
  std::vector<std::string> out;
  std::size_t next_set = 0, next_override = 0;
  for (const CLI::Option* option : a.command->parse_order()) {
    if (option == a.set_option) {
      out.push_back(a.sets.at(next_set++));
    } else if (option == a.overrides_option) {
      std::string o = a.overrides.at(next_override++);
      if (o.find('=') == std::string::npos && o.rfind('~', 0) != 0) {
        throw ConfigError("argument '" + o + "'", "",
                          "expected KEY=VALUE or ~KEY after the config (one config per run)");
      }
      // Hydra's +KEY (add a key) and ++KEY (add or override) set an option like KEY does.
      if (o.rfind("++", 0) == 0) {
        o.erase(0, 2);
      } else if (o.rfind('+', 0) == 0) {
        o.erase(0, 1);
      }
      out.push_back(o);
    }
  }
  return out;
}

config::Experiment load(const ConfigArgs& a) {
  std::vector<std::string> sets = overrides_in_order(a);
  if (!a.device.empty()) sets.push_back("train.device=" + a.device);
  if (!a.output.empty()) sets.push_back("output.root=" + a.output);
  if (!a.progress.empty()) sets.push_back("train.progress=" + a.progress);
  auto exp = config::load_experiment(a.config, sets, registry::experiment_schema(), a.seed);
  // One of N ranks (torchrun, srun): the world size becomes part of the config (and of its
  // hash) unless the config states one; compose::run_experiment refuses a mismatch.
  const backend::Launch launch = backend::detect_launch();
  if (launch.distributed() && exp.section("train").get_int("world_size") == 1) {
    sets.push_back("train.world_size=" + std::to_string(launch.world_size));
    exp = config::load_experiment(a.config, sets, registry::experiment_schema(), a.seed);
  }
  return exp;
}

int cmd_run(const ConfigArgs& a) {
  const auto exp = load(a);
  compose::RunOptions options;
  options.resume = a.resume;
  const auto result = compose::run_experiment(exp, options);
  const auto& m = result.metrics;
  std::cout << fmt::format("status: {}\nresults: {}\n", m["status"].get<std::string>(),
                           (result.dir / "metrics.json").string());
  if (m.contains("final") && !m["final"].is_null()) {
    const auto& f = m["final"];
    std::cout << fmt::format(
        "final (epoch {}): test_err {:.2f}%  test_top5_err {:.2f}%  test_loss {:.4f}  "
        "train_loss {:.4f}  train_err {:.2f}%\n",
        f["epoch"].get<int64_t>(), f["test_err"].get<double>(), f["test_top5_err"].get<double>(),
        f["test_loss"].get<double>(), f["train_loss"].get<double>(), f["train_err"].get<double>());
    std::cout << fmt::format("best test_err {:.2f}% (epoch {}); {:.1f}s wall, {:.0f} img/s\n",
                             m["best"]["test_err"].get<double>(), m["best"]["epoch"].get<int64_t>(),
                             m["wall_time_s"].get<double>(), f["images_per_s"].get<double>());
  }
  if (m.contains("results")) {
    // Scalars of a task's results, one per line (arrays and tables are in the files).
    for (const auto& [k, v] : m["results"].items())
      if (v.is_primitive()) std::cout << k << ": " << v.dump() << "\n";
  }
  switch (result.status) {
    case train::RunStatus::Completed: return kExitOk;
    case train::RunStatus::Diverged: return kExitDiverged;
    case train::RunStatus::Interrupted: return kExitInterrupted;
  }
  return kExitError;
}

int cmd_validate(const ConfigArgs& a) {
  const auto exp = load(a);
  compose::check_experiment(exp);  // component-level checks (e.g. channel counts)
  std::cout << "# " << a.config << ": valid\n# hash " << exp.hash() << "\n# results "
            << compose::run_dir(exp).string() << "\n"
            << exp.resolved_yaml();
  return kExitOk;
}

template <class Table>
void list_table(const Table& table, const std::string& section) {
  std::cout << table.kind() << "s (" << section << ")\n";
  for (const auto& e : table.entries()) {
    std::cout << "  " << e.name << " — " << e.help << "\n";
    std::cout << config::describe_options(e.options, "      ");
  }
}

int cmd_list(const std::string& kind) {
  auto want = [&](const char* k) { return kind.empty() || kind == k; };
  bool any = false;
  if (want("task")) list_table(registry::tasks(), "task.name"), any = true;
  if (want("data")) {
    std::cout << "data (options of every dataset)\n"
              << config::describe_options(registry::data_common_options(), "      ");
    list_table(registry::datasets(), "data.name"), any = true;
  }
  if (want("model")) list_table(registry::models(), "model.name"), any = true;
  if (want("norm")) list_table(registry::norms(), "norm.name"), any = true;
  if (want("optim")) list_table(registry::optimizers(), "optim.name"), any = true;
  if (want("schedule")) {
    std::cout << "lr schedules (options of every schedule)\n"
              << config::describe_options(optim::schedule_common_options(), "      ");
    list_table(registry::lr_schedules(), "schedule.name"), any = true;
  }
  if (want("noise")) list_table(registry::noise_schedules(), "norm.noise.schedule"), any = true;
  if (want("train")) {
    std::cout << "train\n" << config::describe_options(registry::train_options(), "      ");
    any = true;
  }
  if (want("output")) {
    std::cout << "output\n" << config::describe_options(registry::output_options(), "      ");
    any = true;
  }
  if (!any) {
    std::cerr << "normexp list: unknown kind '" << kind
              << "' (valid: task, data, model, norm, optim, schedule, noise, train, output)\n";
    return kExitConfig;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("normexp");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");

  CLI::App app{"normexp — experiment runner for normalization research (LibTorch " +
               torch_version() + ")"};
  app.footer(kExitCodes);
  app.set_version_flag("--version", "normexp " + normexp_version() + " (" + git_commit() +
                                        "), LibTorch " + torch_version());
  app.require_subcommand(1);

  ConfigArgs run_args;
  auto* run = app.add_subcommand("run", "train an experiment and write results/<name>/<hash>/seed<k>/");
  add_config_args(run, run_args);
  run->add_option("--device", run_args.device,
                  "auto (default: CUDA when available), cpu or cuda (gpu: cuda)")
      ->check(CLI::IsMember(backend::device_choices()));
  run->add_option("--output", run_args.output, "results root (default: results)");
  run->add_option("--progress", run_args.progress,
                  "auto (bar on a terminal), bar, plain (log lines) or none")
      ->check(CLI::IsMember({"auto", "bar", "plain", "none"}));
  run->add_flag("--resume", run_args.resume,
                "continue this run (same config, --set and --seed) from its checkpoint; starts "
                "it when it does not exist yet, does nothing when it already completed");
  run->footer(kExitCodes);

  ConfigArgs val_args;
  auto* validate = app.add_subcommand(
      "validate", "check a config (all errors at once, with file:line) and print it resolved");
  add_config_args(validate, val_args);

  std::string list_kind;
  auto* list = app.add_subcommand("list", "show every registered component with its options");
  list->add_option("kind", list_kind, "task, data, model, norm, optim, schedule, noise, train, output");

  int data_exit = -1;  // set by `normexp data ...`, which runs inside app.parse
  add_data_commands(app, data_exit);
  add_report_commands(app, data_exit);  // report, plan, plot: same convention
  add_bench_commands(app, data_exit);
  add_launch_command(app, data_exit);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitConfig;
  }
  if (data_exit >= 0) return data_exit;

  try {
    if (*run) return cmd_run(run_args);
    if (*validate) return cmd_validate(val_args);
    if (*list) return cmd_list(list_kind);
  } catch (const ConfigError& e) {
    print_config_error(e);
    return kExitConfig;
  } catch (const RunExistsError& e) {
    std::cerr << "normexp: " << e.what() << "\n";
    return kExitRunExists;
  } catch (const std::exception& e) {
    std::cerr << "normexp: error: " << e.what() << "\n";
    return kExitError;
  }
  return kExitError;
}
