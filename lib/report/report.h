#pragma once
// Reports over a results root: which runs fill which cell of a table spec, aggregated over
// seeds, rendered next to the paper's numbers; plans for the missing (cell, seed) pairs; and
// learning-curve plots. Torch-free: the caller passes the experiment schema, so that cells
// hash exactly like `normexp run` names its directories.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/experiment.h"
#include "report/spec.h"

namespace normexp::report {

// One run directory <root>/<name>/<hash>/seed<k>/ with a metrics.json. A file that cannot be
// read, is not JSON or is not an object (cut short by a full disk, edited by hand) still gives
// a record, with status "unreadable" and `problem` saying why; hash and seed then come from
// the directory names, so the run counts against its cell instead of vanishing.
struct RunRecord {
  std::filesystem::path dir;
  std::string name, hash, status;
  std::int64_t seed = 0;
  nlohmann::json metrics;  // an object; empty for an unreadable run
  std::string problem;     // why the run is unreadable ("" otherwise)
};

// Every run under `root`, by hash.
std::map<std::string, std::vector<RunRecord>> index_results(const std::filesystem::path& root);

// A metric by dotted path ("final.test_err"); nullopt when absent or not a number.
std::optional<double> metric_value(const nlohmann::json& metrics, const std::string& dotted);

// "<dir>/metrics.json: <problem>" for every unreadable run of the index, in path order.
std::vector<std::string> unreadable_runs(const std::map<std::string, std::vector<RunRecord>>& index);

struct Stats {
  int n = 0;
  double mean = 0, std = 0;  // sample std (n-1); 0 when n < 2
};
Stats aggregate(const std::vector<double>& values);

struct CellResult {
  const Cell* cell = nullptr;
  std::string hash;                       // empty for unsupported cells
  std::string config_error;               // the cell's config did not resolve
  Stats stats;                            // completed runs with the metric
  std::vector<std::int64_t> completed_seeds;
  std::vector<std::filesystem::path> completed_dirs;  // for learning curves
  std::map<std::string, int> other;       // status -> count (diverged, running, interrupted)
  Mark ours_mark = Mark::None;
};

struct Report {
  const TableSpec* spec = nullptr;
  std::vector<CellResult> cells;          // in spec.cells order
  std::vector<RunRecord> unmatched;       // filled when asked
  const CellResult* find(const std::string& row, const std::string& column) const;
};

struct ReportOptions {
  std::vector<std::string> sets;  // applied to every cell after its own
  bool unmatched = false;
};

// Resolves every supported cell to its hash and collects its runs from `index`.
Report build_report(const TableSpec& spec, const config::Schema& schema,
                    const std::map<std::string, std::vector<RunRecord>>& index,
                    const ReportOptions& options);

std::string render_markdown(const Report& r);
std::string render_csv(const Report& r);
std::string render_latex(const Report& r);
std::string render_json(const Report& r);
std::string render(const Report& r, const std::string& format);  // markdown|csv|latex|json

// One line per missing (cell, seed): `normexp run CONFIG --set .. --seed K --resume`, or an
// sbatch job-array script. Unsupported cells become comment lines.
// What an sbatch job array asks of the cluster (normexp plan --slurm). Every run is one array
// task; a run of `ranks` > 1 is data-parallel (srun starts one normexp per rank).
struct SlurmOptions {
  std::string partition, account;
  std::string time;             // --time, e.g. 1-00:00:00 (empty: the partition's default)
  int ranks = 1;                // tasks per run (train.world_size)
  int gpus_per_task = 1;        // 0: CPU-only tasks
  int cpus_per_task = 0;        // 0: the cluster's default
  int throttle = 0;             // %K: at most K array tasks at once (0: no limit)
  bool requeue = true;          // --requeue, and requeue itself after a SIGTERM checkpoint
  int signal_seconds = 300;     // SIGTERM this long before the time limit (0: none)
  std::vector<std::string> extra;  // further #SBATCH lines, as written after "#SBATCH "
};

struct PlanOptions {
  std::vector<std::int64_t> seeds{0};
  std::vector<std::string> sets;
  std::string results;  // passed as --output when not empty
  std::string binary = "normexp";
  bool slurm = false;
  SlurmOptions slurm_options;
};
struct PlanItem {
  const Cell* cell;
  std::int64_t seed;
  std::string command;
  std::string workload;    // what sets a step's cost: see workload_key
  std::int64_t epochs = 0;
};
std::vector<PlanItem> plan_items(const TableSpec& spec, const config::Schema& schema,
                                 const std::map<std::string, std::vector<RunRecord>>& index,
                                 const PlanOptions& options, std::vector<std::string>& comments);
std::string render_plan(const TableSpec& spec, const std::vector<PlanItem>& items,
                        const std::vector<std::string>& comments, const PlanOptions& options);

// What sets the cost of a training step, from a resolved config (or a `normexp bench` row,
// which carries the same fields): the model section, norm.name, train.batch_size,
// data.augment and data.cutout. Precision and memory format are the bench's own.
std::string workload_key(const nlohmann::json& model, const std::string& norm,
                         std::int64_t batch_size, const std::string& augment, std::int64_t cutout);

// Device time of planned runs from `normexp bench` rows (arrays as `bench --out` writes
// them): each run takes epochs x training-set size / images/s of the row with its workload.
// Training steps only: evaluation passes and checkpoints come on top. Comment lines
// ("# ..."), ending with the total and the runs without a matching row.
std::vector<std::string> estimate_plan(const std::vector<PlanItem>& items,
                                       const std::vector<nlohmann::json>& bench_rows);

// Learning curves: writes <dir>/<spec>.dat (one gnuplot data block per cell with completed
// runs, per-epoch means over seeds) and <dir>/<spec>.gp, then runs gnuplot when it is on
// PATH to make <spec>_<series>.png and .svg. Returns a human summary (what was written, or
// how to render it by hand).
std::string write_plots(const Report& r, const std::filesystem::path& dir);

// Shell-quotes one word when it needs it.
std::string shell_quote(const std::string& word);

}  // namespace normexp::report
