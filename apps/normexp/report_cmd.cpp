#include "report_cmd.h"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/fs.h"
#include "registry/builtin.h"
#include "guarded.h"
#include "report/claims.h"
#include "report/report.h"

namespace normexp {

namespace {

struct ReportArgs {
  std::vector<std::string> tables;
  std::vector<std::string> sets;
  std::string results = "results", tables_dir = "configs/tables", format = "markdown", output,
              plot_dir, seeds = "0", binary = "normexp";
  std::vector<std::string> estimates;
  bool unmatched = false, slurm = false, no_requeue = false, claims_only = false;
  report::SlurmOptions slurm_options;
};

report::TableSpec load(const ReportArgs& a, const std::string& table) {
  return report::load_spec(report::resolve_spec_path(table, a.tables_dir));
}

void emit(const ReportArgs& a, const std::string& text) {
  if (a.output.empty())
    std::cout << text;
  else
    write_file_atomic(a.output, text);
}

std::vector<std::int64_t> parse_seeds(const std::string& text) {
  std::vector<std::int64_t> seeds;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      size_t used = 0;
      seeds.push_back(std::stoll(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw ConfigError("--seeds", "seeds", "expected integers separated by commas, got '" + text + "'");
    }
  }
  return seeds;
}

void common_options(CLI::App* cmd, ReportArgs& a) {
  cmd->add_option("--results", a.results, "results root to scan")->capture_default_str();
  cmd->add_option("--set", a.sets,
                  "override applied to every cell after its own (repeatable), e.g. "
                  "--set train.epochs=10 for a reduced reproduction (hashes change accordingly); "
                  "report only: SPEC:key=value applies to that spec alone")
      ->allow_extra_args(false);
  cmd->add_option("--tables", a.tables_dir, "where spec names are looked up")
      ->capture_default_str();
}

// The results index, with every unreadable metrics.json named on stderr (tables count such
// runs as "unreadable" in their cell; they are never averaged and never silently dropped).
std::map<std::string, std::vector<report::RunRecord>> indexed(const ReportArgs& a) {
  auto index = report::index_results(a.results);
  const auto bad = report::unreadable_runs(index);
  for (const auto& line : bad) std::cerr << "warning: unreadable run: " << line << "\n";
  if (!bad.empty())
    std::cerr << "warning: " << bad.size() << " unreadable run" << (bad.size() > 1 ? "s" : "")
              << " under " << a.results << ": counted apart in their cells, not averaged\n";
  return index;
}

}  // namespace

void add_report_commands(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ReportArgs>();
  const auto& schema = registry::experiment_schema();

  auto* rep = app.add_subcommand(
      "report", "paper tables from the results: ours (mean ± std over seeds, n) next to the paper");
  rep->add_option("table", a->tables,
                  "spec name in configs/tables (e.g. ikami_table4) or a path (with --claims: "
                  "optional, default every spec)");
  common_options(rep, *a);
  rep->add_option("--format", a->format, "markdown, latex, csv or json")
      ->check(CLI::IsMember({"markdown", "latex", "csv", "json"}))
      ->capture_default_str();
  rep->add_option("--output", a->output, "write to this file (atomically) instead of stdout");
  rep->add_flag("--unmatched", a->unmatched, "also list runs under the root that match no cell");
  rep->add_option("--plot", a->plot_dir, "also write learning curves (gnuplot) into this folder");
  rep->add_flag("--claims", a->claims_only,
                "only the paper's claims and their verdicts (holds / does not hold / within "
                "the seed noise / not enough runs), for the given specs or every spec in "
                "--tables that states claims");
  rep->callback([a, &exit_code, &schema] {
    exit_code = guarded([&] {
      if (a->tables.empty() && !a->claims_only)
        throw ConfigError("", "table", "give a table spec (e.g. ikami_table1), or --claims");
      std::vector<std::string> names = a->tables;
      if (names.empty()) {
        for (const auto& name : report::spec_names(a->tables_dir))
          names.push_back((std::filesystem::path(a->tables_dir) / (name + ".yaml")).string());
      }
      const auto index = indexed(*a);
      // "--set SPEC:key=value" applies to that spec alone (a listing of many specs whose runs
      // were made at different sizes); a scope that names none of them is a typo, not a no-op.
      std::map<std::string, std::vector<std::string>> scoped;
      std::vector<std::string> global;
      for (const auto& s : a->sets) {
        const auto colon = s.find(':'), eq = s.find('=');
        if (colon != std::string::npos && colon < eq)
          scoped[s.substr(0, colon)].push_back(s.substr(colon + 1));
        else
          global.push_back(s);
      }
      std::vector<report::TableSpec> specs;
      for (const auto& t : names) specs.push_back(load(*a, t));
      for (const auto& [scope, sets] : scoped)
        if (std::none_of(specs.begin(), specs.end(),
                         [&](const report::TableSpec& s) { return s.name == scope; }))
          throw ConfigError("--set", scope + ":" + sets.front(),
                            "no spec named '" + scope + "' in this report");
      std::vector<std::string> parts;
      std::map<std::string, int> tally;  // verdict -> claims (--claims)
      for (const auto& spec : specs) {
        report::ReportOptions o;
        o.sets = global;
        const auto own = scoped.find(spec.name);
        if (own != scoped.end()) o.sets.insert(o.sets.end(), own->second.begin(), own->second.end());
        o.unmatched = a->unmatched;
        const auto r = report::build_report(spec, schema, index, o);
        const auto verdicts = report::judge_claims(r);
        if (a->claims_only) {
          if (!verdicts.empty())
            parts.push_back(fmt::format("## {} ({})\n\n{}", spec.title, spec.name,
                                        report::render_claims(verdicts, false)));
          for (const auto& v : verdicts) ++tally[v.verdict];
          continue;
        }
        // The claims follow the table in Markdown (the other formats are for machines).
        parts.push_back(report::render(r, a->format) +
                        (a->format == "markdown" ? report::render_claims(verdicts) : ""));
        if (!a->plot_dir.empty()) std::cerr << report::write_plots(r, a->plot_dir);
      }
      std::string text;
      if (a->format == "json" && parts.size() > 1)
        text = fmt::format("[\n{}]\n", fmt::join(parts, ",\n"));
      else
        text = fmt::format("{}", fmt::join(parts, "\n"));
      if (a->claims_only) {  // one tally and one note for the whole listing
        int total = 0;
        for (const auto& [verdict, n] : tally) total += n;
        text += fmt::format(
            "\n{} claim{}: {} hold, {} within the seed noise, {} do not hold, {} not enough "
            "runs.\n\n{}",
            total, total == 1 ? "" : "s", tally["holds"], tally["within the seed noise"],
            tally["does not hold"], tally["not enough runs"], report::claims_note());
      }
      emit(*a, text);
    });
  });

  auto* plan = app.add_subcommand(
      "plan", "print the `normexp run` commands (or an sbatch array) that fill a table's missing runs");
  plan->add_option("table", a->tables, "spec name or path")->required()->expected(1);
  common_options(plan, *a);
  plan->add_option("--seeds", a->seeds, "seeds every cell should have, e.g. 0,1,2")
      ->capture_default_str();
  plan->add_flag("--slurm", a->slurm,
                 "an sbatch job-array script instead of a command list: one array task per "
                 "run, requeued after SIGTERM (preemption, time limit) and resumed from its "
                 "checkpoint");
  auto& so = a->slurm_options;
  plan->add_option("--partition", so.partition, "--slurm: #SBATCH --partition");
  plan->add_option("--account", so.account, "--slurm: #SBATCH --account");
  plan->add_option("--time", so.time, "--slurm: #SBATCH --time, e.g. 1-00:00:00 or 12:00:00");
  plan->add_option("--ranks", so.ranks,
                   "data-parallel ranks per run (train.world_size; with --slurm, srun starts "
                   "one normexp per rank)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  plan->add_option("--gpus-per-task", so.gpus_per_task, "--slurm: GPUs per rank (0: CPU only)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  plan->add_option("--cpus-per-task", so.cpus_per_task, "--slurm: CPU cores per rank (0: the cluster's default)")
      ->check(CLI::NonNegativeNumber);
  plan->add_option("--throttle", so.throttle, "--slurm: at most K array tasks at once (--array=...%K)")
      ->check(CLI::NonNegativeNumber);
  plan->add_option("--signal-before", so.signal_seconds,
                   "--slurm: seconds before the time limit at which normexp gets SIGTERM and "
                   "checkpoints (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  plan->add_flag("--no-requeue", a->no_requeue, "--slurm: neither --requeue nor a requeue after SIGTERM");
  plan->add_option("--sbatch", so.extra,
                   "--slurm: a further #SBATCH line, e.g. --sbatch '--mem=64G' (repeatable)");
  plan->add_option("--output", a->output, "write to this file (atomically) instead of stdout");
  plan->add_option("--estimate", a->estimates,
                   "normexp bench --out JSON file(s): add the device-hours of the planned runs "
                   "(epochs x training-set size / measured images/s per workload) as comments")
      ->check(CLI::ExistingFile);
  plan->add_option("--bin", a->binary, "the normexp command in the emitted lines (e.g. a path on the cluster)")
      ->capture_default_str();
  plan->callback([a, &exit_code, &schema] {
    exit_code = guarded([&] {
      const auto spec = load(*a, a->tables.at(0));
      report::PlanOptions o;
      o.seeds = parse_seeds(a->seeds);
      o.sets = a->sets;
      o.slurm = a->slurm;
      o.slurm_options = a->slurm_options;
      o.slurm_options.requeue = !a->no_requeue;
      // The world size is part of each run's config and hash: a plan for N ranks looks for,
      // and launches, N-rank runs.
      if (a->slurm_options.ranks > 1)
        o.sets.push_back("train.world_size=" + std::to_string(a->slurm_options.ranks));
      o.binary = a->binary;
      if (a->results != "results") o.results = a->results;  // default root needs no flag
      std::vector<std::string> comments;
      const auto items =
          report::plan_items(spec, schema, indexed(*a), o, comments);
      if (!a->estimates.empty()) {
        std::vector<nlohmann::json> rows;
        for (const auto& path : a->estimates) {
          nlohmann::json j;
          try {
            j = nlohmann::json::parse(read_file(path));
          } catch (const nlohmann::json::exception& e) {
            throw RunError("--estimate " + path + ": not JSON (" + e.what() + ")");
          }
          for (const auto& row : j.is_array() ? j : nlohmann::json::array({j})) {
            if (!row.is_object() || row.value("benchmark", "") != "train_step")
              throw RunError("--estimate " + path +
                             ": not the output of `normexp bench CONFIG --out` (train_step rows)");
            rows.push_back(row);
          }
        }
        const auto lines = report::estimate_plan(items, rows);
        comments.insert(comments.begin(), lines.begin(), lines.end());
      }
      emit(*a, report::render_plan(spec, items, comments, o));
    });
  });

  auto* plot = app.add_subcommand(
      "plot", "learning curves (train loss, test error per epoch) of a spec's cells via gnuplot");
  plot->add_option("table", a->tables, "spec name or path (e.g. ikami_figure2)")
      ->required()
      ->expected(1);
  common_options(plot, *a);
  plot->add_option("--out", a->plot_dir, "output folder (default plots/<spec>)");
  plot->callback([a, &exit_code, &schema] {
    exit_code = guarded([&] {
      const auto spec = load(*a, a->tables.at(0));
      report::ReportOptions o;
      o.sets = a->sets;
      const auto r = report::build_report(spec, schema, indexed(*a), o);
      std::cout << report::write_plots(r, a->plot_dir.empty() ? "plots/" + spec.name : a->plot_dir);
    });
  });
}

}  // namespace normexp
