// Plans for the missing (cell, seed) pairs: shell commands, a Slurm array, and the H200-hours
// they would take from `normexp bench` rows.

#include "report/report.h"

#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/fs.h"

namespace normexp::report {

namespace fs = std::filesystem;
using nlohmann::json;

std::string shell_quote(const std::string& word) {
  if (!word.empty() &&
      word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                             "_-.,/=:+@%") == std::string::npos)
    return word;
  std::string out = "'";
  for (char ch : word) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}


std::vector<PlanItem> plan_items(const TableSpec& spec, const config::Schema& schema,
                                 const std::map<std::string, std::vector<RunRecord>>& index,
                                 const PlanOptions& options, std::vector<std::string>& comments) {
  std::vector<PlanItem> items;
  // Cells that read different metrics of one run (Table 5's two accuracies) share the run:
  // it is planned once.
  std::set<std::pair<std::string, std::int64_t>> planned;
  for (const auto& cell : spec.cells) {
    const std::string name = "(" + cell.row + ", " + cell.column + ")";
    if (!cell.supported()) {
      comments.push_back("# skipped " + name + ": " + cell.status);
      continue;
    }
    const auto sets = cell.sets_with(options.sets);
    std::string hash, workload;
    std::int64_t epochs = 0;
    try {
      const auto exp = config::load_experiment(*cell.config, sets, schema);
      hash = exp.hash();
      try {  // classification cells; other tasks have no such workload (estimate: unmatched)
        const auto& data = exp.section("data");
        workload = workload_key(exp.resolved()["model"], exp.section("norm").get_string("name"),
                                exp.section("train").get_int("batch_size"),
                                data.get_string("augment"), data.get_int("cutout"));
        epochs = exp.section("train").get_int("epochs");
      } catch (const std::exception&) {
        workload = "task " + exp.task();
      }
    } catch (const ConfigError& e) {
      comments.push_back("# skipped " + name + ": config error: " + e.issues().front().str());
      continue;
    }
    const auto it = index.find(hash);
    for (const auto seed : options.seeds) {
      std::string done;
      const RunRecord* unreadable = nullptr;
      if (it != index.end())
        for (const auto& run : it->second) {
          if (run.seed == seed && (run.status == "completed" || run.status == "diverged"))
            done = run.status;
          if (run.seed == seed && !run.problem.empty()) unreadable = &run;
        }
      if (done == "completed") continue;
      if (unreadable && done.empty()) {  // --resume would stop at it: a human looks first
        comments.push_back(fmt::format("# not planned {} seed {}: {}/metrics.json is unreadable "
                                       "({}); repair or remove that run directory",
                                       name, seed, unreadable->dir.string(),
                                       unreadable->problem));
        continue;
      }
      if (done == "diverged") {  // re-running gives the same divergence; a human decides
        comments.push_back(fmt::format("# not planned {} seed {}: diverged", name, seed));
        continue;
      }
      if (!planned.insert({hash, seed}).second) continue;
      std::string cmd = options.binary + " run " + shell_quote(cell.config_display());
      for (const auto& s : sets) cmd += " --set " + shell_quote(s);
      cmd += fmt::format(" --seed {}", seed);
      if (!options.results.empty()) cmd += " --output " + shell_quote(options.results);
      cmd += " --resume";
      items.push_back({&cell, seed, cmd, workload, epochs});
    }
  }
  return items;
}

std::string render_plan(const TableSpec& spec, const std::vector<PlanItem>& items,
                        const std::vector<std::string>& comments, const PlanOptions& options) {
  std::string out;
  if (!options.slurm) {
    out += fmt::format("# {}: {} missing (cell, seed) runs\n", spec.name, items.size());
    for (const auto& c : comments) out += c + "\n";
    for (const auto& i : items) out += i.command + "\n";
    return out;
  }
  const SlurmOptions& so = options.slurm_options;
  out += "#!/bin/bash\n";
  out += fmt::format("# normexp plan {}: {} missing (cell, seed) runs; submit with sbatch.\n",
                     spec.name, items.size());
  for (const auto& c : comments) out += c + "\n";
  if (items.empty()) return out + "# nothing to run\n";
  auto sbatch = [&](const std::string& line) { out += "#SBATCH " + line + "\n"; };
  sbatch("--job-name=normexp-" + spec.name);
  sbatch(fmt::format("--array=0-{}{}", items.size() - 1,
                     so.throttle > 0 ? fmt::format("%{}", so.throttle) : ""));
  sbatch("--output=slurm-%A_%a.out");
  sbatch("--open-mode=append");  // a requeued task goes on in the same log
  sbatch(fmt::format("--ntasks={}", so.ranks));
  if (so.gpus_per_task > 0) sbatch(fmt::format("--gpus-per-task={}", so.gpus_per_task));
  if (so.cpus_per_task > 0) sbatch(fmt::format("--cpus-per-task={}", so.cpus_per_task));
  if (!so.partition.empty()) sbatch("--partition=" + so.partition);
  if (!so.account.empty()) sbatch("--account=" + so.account);
  if (!so.time.empty()) sbatch("--time=" + so.time);
  if (so.requeue) sbatch("--requeue");
  // The signal goes to the job step, i.e. to normexp itself: it finishes the step, writes a
  // checkpoint and exits 130 before the limit kills it.
  if (so.signal_seconds > 0) sbatch(fmt::format("--signal=TERM@{}", so.signal_seconds));
  for (const auto& line : so.extra) sbatch(line);
  out += so.requeue
             ? "#\n# Every command carries --resume: a task that starts again (preempted and "
               "requeued by\n# Slurm, or requeued below after its time limit) continues from its "
               "last checkpoint.\n"
             : "#\n# Every command carries --resume: submitting this script again continues "
               "every unfinished run\n# from its last checkpoint.\n";
  if (so.ranks > 1)
    out += fmt::format("# Each run is data-parallel over {} ranks: srun starts one normexp per "
                       "rank (train.world_size={}).\n",
                       so.ranks, so.ranks);
  out += "set -uo pipefail\ncmds=(\n";
  for (const auto& i : items) out += "  " + shell_quote(i.command) + "\n";
  out += ")\nsrun --kill-on-bad-exit=1 bash -c \"exec ${cmds[$SLURM_ARRAY_TASK_ID]}\"\ncode=$?\n";
  if (so.requeue)
    out += "# 130/143: stopped by SIGTERM with a checkpoint written (the time limit's --signal, or\n"
           "# a preemption): queue the same task again to continue it.\n"
           "if [ \"$code\" -eq 130 ] || [ \"$code\" -eq 143 ]; then\n"
           "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
           "fi\n";
  out += "exit \"$code\"\n";
  return out;
}

std::string workload_key(const json& model, const std::string& norm, std::int64_t batch_size,
                         const std::string& augment, std::int64_t cutout) {
  return fmt::format("{} {} b{} {}{}", model.dump(), norm, batch_size, augment,
                     cutout > 0 ? fmt::format(" cutout{}", cutout) : "");
}

std::vector<std::string> estimate_plan(const std::vector<PlanItem>& items,
                                       const std::vector<json>& bench_rows) {
  struct Rate {
    double images_per_s = 0;
    std::int64_t train_size = 0;
    std::string device;
  };
  std::map<std::string, Rate> rates;
  for (const auto& row : bench_rows) {
    const auto& data = row.at("estimate");
    const std::string key = workload_key(
        row.at("model"), row.at("norm").get<std::string>(), row.at("batch_size").get<std::int64_t>(),
        row.at("augment").get<std::string>(),
        row.contains("cutout") ? row["cutout"].get<std::int64_t>() : 0);
    rates[key] = {row.at("images_per_s").get<double>(), data.at("train_size").get<std::int64_t>(),
                  row.value("device", std::string("?"))};
  }
  struct Group {
    std::int64_t runs = 0;
    double hours = 0;
  };
  std::map<std::string, Group> groups;
  std::set<std::string> missing;
  double total = 0;
  std::int64_t matched = 0;
  std::set<std::string> devices;
  for (const auto& item : items) {
    const auto it = rates.find(item.workload);
    if (it == rates.end() || it->second.images_per_s <= 0) {
      missing.insert(item.workload);
      continue;
    }
    const double hours = static_cast<double>(item.epochs) *
                         static_cast<double>(it->second.train_size) /
                         it->second.images_per_s / 3600.0;
    auto& g = groups[item.workload];
    ++g.runs;
    g.hours += hours;
    total += hours;
    ++matched;
    devices.insert(it->second.device);
  }
  std::vector<std::string> out;
  const std::string on = fmt::format("{}", fmt::join(devices, ", "));
  out.push_back(fmt::format("# estimate: {} of {} planned runs, {:.1f} device-hours of training "
                            "steps on {} (evaluation not included)",
                            matched, items.size(), total, on.empty() ? "-" : on));
  for (const auto& [key, g] : groups)
    out.push_back(fmt::format("#   {:>4} runs x {:6.2f} h  {}", g.runs, g.hours / g.runs, key));
  for (const auto& key : missing)
    out.push_back("#   no bench row for: " + key + " (normexp bench one of its cells)");
  return out;
}


}  // namespace normexp::report
