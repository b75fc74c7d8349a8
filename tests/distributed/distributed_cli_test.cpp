// Data-parallel runs as a user launches them: N processes of the normexp binary with
// torchrun's environment, meeting over Gloo on 127.0.0.1. Each test compares against a run
// computed another way (one process with the whole batch) or checks a failure mode a user
// would hit (a dead rank, a signal, a resume with the wrong world size).
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/test_support.h"
#include "core/fs.h"
#include "distributed/ranks.h"
#include "support/cli.h"
#include "train/checkpoint.h"

namespace normexp {
namespace {

namespace fs = std::filesystem;

struct RankRun {
  std::vector<int> codes;
  std::vector<std::string> logs;
};

// `before_wait` runs in the launching shell with the ranks' pids in $pid0, $pid1, ...
RankRun launch(const testing::TempDir& dir, int world, const std::string& args,
               const std::string& tag, const std::string& before_wait = "") {
  const int port = testing::free_port();
  std::string script = "set -u\n";
  for (int r = 0; r < world; ++r)
    script += fmt::format(
        "RANK={0} WORLD_SIZE={1} LOCAL_RANK={0} LOCAL_WORLD_SIZE={1} MASTER_ADDR=127.0.0.1 "
        "MASTER_PORT={2} {3} run {4} > {5}/{6}{0}.log 2>&1 &\npid{0}=$!\n",
        r, world, port, NORMEXP_BINARY, args, dir.path().string(), tag);
  script += before_wait + "\n";
  for (int r = 0; r < world; ++r) script += fmt::format("wait $pid{0}; echo code{0}=$?\n", r);
  const auto file = dir.write(tag + ".sh", script);
  const auto out = testing::shell("bash " + file.string()).out;
  RankRun run;
  for (int r = 0; r < world; ++r) {
    std::smatch m;
    const std::regex re("code" + std::to_string(r) + "=(\\d+)");
    run.codes.push_back(std::regex_search(out, m, re) ? std::stoi(m[1]) : -1);
    run.logs.push_back(read_file(dir.path() / fmt::format("{}{}.log", tag, r)));
  }
  return run;
}

// The one run directory under `root` (<root>/<name>/<hash>/seed0).
fs::path only_run(const fs::path& root) {
  std::vector<fs::path> found;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename() == "metrics.json") found.push_back(e.path().parent_path());
  EXPECT_EQ(found.size(), 1u) << root;
  return found.empty() ? fs::path() : found.front();
}

// Largest relative difference between the two runs' model entries.
double max_model_difference(const fs::path& a, const fs::path& b) {
  const auto ca = train::Checkpoint::load(a / "checkpoint.pt");
  const auto cb = train::Checkpoint::load(b / "checkpoint.pt");
  EXPECT_EQ(ca.model.size(), cb.model.size());
  double worst = 0;
  for (const auto& [name, t] : ca.model) {
    const auto& u = cb.model.at(name);
    if (!t.is_floating_point()) continue;
    const double scale = std::max(1e-3, t.abs().max().item<double>());
    worst = std::max(worst, (t - u).abs().max().item<double>() / scale);
  }
  return worst;
}

const std::string kSmall =
    "name: dp\n"
    "data: {name: synthetic, classes: 3, train_size: 64, test_size: 30, resolution: 8, "
    "augment: none, shift: 1, noise: 0.5}\n"
    "model: {name: cnn9, width: 0.25}\noptim: {lr: 0.05}\n"
    "train: {epochs: 3, batch_size: 16, threads: 1, progress: plain}\n";

class TwoRanks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::have_gloo()) GTEST_SKIP() << "built without Gloo headers";
  }
  testing::TempDir dir;
};

// 2 ranks with 8 images each take the steps one process takes with 16: without BatchNorm the
// parameters agree to float rounding (the all-reduce sums in another order). The data are
// learnable (the loss falls from ln 3 within the 12 steps), so the comparison is of nets that
// learn: on the earlier, unlearnable data cwo's loss stayed at ln 3, its affine biases'
// gradients were sums that nearly cancel, and rounding alone (one process, 2 threads vs 1)
// moved them by 4e-3 relative on some CPUs. The bound is still that rounding floor, measured
// here: a wrong gradient average (a sum, or one rank's gradient) moves the parameters by O(1).
// cwo's `init: data` takes gamma, beta from the first batch: each rank must use the global
// batch's statistics (from its own 8 images the ranks differed by 0.56 and stayed apart).
TEST_F(TwoRanks, EqualOneProcessWithTheWholeBatchWithoutBatchNorm) {
  for (const std::string norm :
       {"{name: gn}", "{name: cwo, noise: {sigma: 0}}", "{name: cwo, noise: {sigma: 0}, init: data}"}) {
    SCOPED_TRACE(norm);
    const auto cfg = dir.write("c.yaml", kSmall + "norm: " + norm + "\n");
    std::string two_threads = kSmall;
    two_threads.replace(two_threads.find("threads: 1"), 10, "threads: 2");
    const auto cfg2 = dir.write("c2.yaml", two_threads + "norm: " + norm + "\n");
    const auto one = dir.path() / ("one" + std::to_string(norm.size()));
    const auto one2 = dir.path() / ("onethreads" + std::to_string(norm.size()));
    const auto two = dir.path() / ("two" + std::to_string(norm.size()));
    auto single = testing::normexp("run " + cfg.string() + " --output " + one.string());
    ASSERT_EQ(single.code, 0) << single.out;
    auto single2 = testing::normexp("run " + cfg2.string() + " --output " + one2.string());
    ASSERT_EQ(single2.code, 0) << single2.out;
    const auto ranks = launch(dir, 2, cfg.string() + " --output " + two.string(), "eq");
    ASSERT_EQ(ranks.codes, (std::vector<int>{0, 0})) << ranks.logs[0] << ranks.logs[1];
    const auto a = only_run(one), b = only_run(two);
    const double rounding = max_model_difference(a, only_run(one2));
    EXPECT_LT(max_model_difference(a, b), std::max(2e-5, 4 * rounding)) << "rounding " << rounding;
    EXPECT_LT(rounding, 0.05);  // the floor itself stays rounding-sized
    const auto ma = nlohmann::json::parse(read_file(a / "metrics.json"));
    const auto mb = nlohmann::json::parse(read_file(b / "metrics.json"));
    EXPECT_EQ(mb["effective"]["world_size"], 2);
    EXPECT_EQ(mb["config"]["train"]["world_size"], 2);  // in the config and its hash
    EXPECT_NE(ma["hash"], mb["hash"]);
    for (const char* key : {"train_loss", "test_loss", "test_err"})
      EXPECT_NEAR(ma["final"][key].get<double>(), mb["final"][key].get<double>(), 1e-4) << key;
    // Rank 0 writes, rank 1 stays quiet and writes nothing: the directory holds one run's
    // files, none half-written.
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(b)) files.insert(e.path().filename().string());
    EXPECT_EQ(files, (std::set<std::string>{"checkpoint.pt", "config.yaml", "history.jsonl",
                                            "metrics.json", "events.out.tfevents.normexp"}));
    EXPECT_EQ(ranks.logs[1].find("info"), std::string::npos) << ranks.logs[1];
    EXPECT_NE(ranks.logs[0].find("data-parallel run: 2 ranks over gloo"), std::string::npos);
  }
}

// With BatchNorm each rank normalizes its own 8 images (different from one process's 16) unless
// train.sync_bn all-reduces the statistics.
TEST_F(TwoRanks, SyncBnEqualsOneProcessAndPerRankBnDoesNot) {
  const auto cfg = dir.write("c.yaml", kSmall + "norm: {name: bn}\n");
  auto single = testing::normexp("run " + cfg.string() + " --output " +
                                 (dir.path() / "one").string());
  ASSERT_EQ(single.code, 0) << single.out;
  const auto synced = launch(dir, 2,
                             cfg.string() + " --set train.sync_bn=true --output " +
                                 (dir.path() / "sync").string(),
                             "sync");
  ASSERT_EQ(synced.codes, (std::vector<int>{0, 0})) << synced.logs[0] << synced.logs[1];
  const auto local = launch(dir, 2, cfg.string() + " --output " + (dir.path() / "local").string(),
                            "local");
  ASSERT_EQ(local.codes, (std::vector<int>{0, 0})) << local.logs[0] << local.logs[1];
  const auto one = only_run(dir.path() / "one");
  EXPECT_LT(max_model_difference(one, only_run(dir.path() / "sync")), 2e-5);
  EXPECT_GT(max_model_difference(one, only_run(dir.path() / "local")), 1e-3);
}

// BCN's batch statistics stay per rank (its fused function has no collective), so asking
// train.sync_bn for global statistics with them is refused on every rank before any training,
// naming the key and the way out; per-sample statistics (tokens) are accepted and train.
TEST_F(TwoRanks, SyncBnRefusesBcnBatchStatisticsAndAcceptsTokens) {
  const auto batch = dir.write("b.yaml", kSmall + "norm: {name: bcn, stats: batch}\n");
  const auto refused = launch(dir, 2,
                              batch.string() + " --set train.sync_bn=true --output " +
                                  (dir.path() / "refused").string(),
                              "refused");
  EXPECT_EQ(refused.codes, (std::vector<int>{2, 2})) << refused.logs[0] << refused.logs[1];
  for (const auto& log : refused.logs) {
    EXPECT_NE(log.find("train.sync_bn"), std::string::npos) << log;
    EXPECT_NE(log.find("norm.stats: tokens"), std::string::npos) << log;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "refused" / "dp"));  // nothing half-written
  const auto tokens = dir.write("t.yaml", kSmall + "norm: {name: bcn, stats: tokens}\n");
  const auto accepted = launch(dir, 2,
                               tokens.string() + " --set train.sync_bn=true --output " +
                                   (dir.path() / "tokens").string(),
                               "tokens");
  EXPECT_EQ(accepted.codes, (std::vector<int>{0, 0})) << accepted.logs[0] << accepted.logs[1];
}

// Long enough (seconds per epoch) to be interrupted or killed part way.
std::string long_yaml() {
  return "name: dplong\n"
         "data: {name: synthetic, classes: 5, train_size: 3000, test_size: 200, resolution: 16}\n"
         "model: {name: cnn9, width: 0.25}\nnorm: {name: gn}\noptim: {lr: 0.05}\n"
         "train: {epochs: 3, batch_size: 64, threads: 1, progress: plain, deterministic: true}\n";
}

// Waits until rank 0 has claimed the run directory, then lets training start.
std::string after_claim(const fs::path& root, double seconds) {
  return fmt::format(
      "for i in $(seq 200); do ls {}/*/*/seed0/config.yaml >/dev/null 2>&1 && break; "
      "sleep 0.1; done; sleep {}",
      root.string(), seconds);
}

TEST_F(TwoRanks, AKilledRankMakesTheOtherFailWithAMessage) {
  const auto cfg = dir.write("long.yaml", long_yaml());
  const auto root = dir.path() / "r";
  const auto start = std::chrono::steady_clock::now();
  const auto run = launch(dir, 2, cfg.string() + " --output " + root.string() +
                                      " --set train.dist_timeout_s=60",
                          "kill", after_claim(root, 1.0) + "; kill -KILL $pid1");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(run.codes[1], 137);  // killed
  EXPECT_EQ(run.codes[0], 1) << run.logs[0];
  EXPECT_NE(run.logs[0].find("failed on rank 0 of 2 (gloo)"), std::string::npos) << run.logs[0];
  EXPECT_NE(run.logs[0].find("Another rank has probably died"), std::string::npos);
  EXPECT_LT(seconds, 60.0);  // a closed connection is noticed at once, long before the timeout
}

TEST_F(TwoRanks, SigtermOnOneRankStopsBothAndResumeEndsLikeAnUninterruptedRun) {
  const auto cfg = dir.write("long.yaml", long_yaml());
  const auto straight_root = dir.path() / "straight", root = dir.path() / "stopped";
  const auto straight = launch(dir, 2, cfg.string() + " --output " + straight_root.string(), "s");
  ASSERT_EQ(straight.codes, (std::vector<int>{0, 0})) << straight.logs[0];

  // SIGTERM to rank 1 only: both ranks agree to stop at one step and checkpoint there.
  const auto stopped = launch(dir, 2, cfg.string() + " --output " + root.string(), "t",
                              after_claim(root, 1.5) + "; kill -TERM $pid1");
  ASSERT_EQ(stopped.codes, (std::vector<int>{130, 130})) << stopped.logs[0] << stopped.logs[1];
  EXPECT_NE(stopped.logs[0].find("checkpoint written"), std::string::npos) << stopped.logs[0];
  const auto run_dir = only_run(root);
  const auto ck = train::Checkpoint::load(run_dir / "checkpoint.pt");
  EXPECT_EQ(ck.progress.at("world_size").item<int64_t>(), 2);
  EXPECT_EQ(ck.progress.at("rng_cpu_ranks").size(0), 2);  // every rank's random stream
  // Mid-epoch or at an epoch's end (on a loaded machine the signal can land in evaluation):
  // either way the resumed run must end like the uninterrupted one, every rank's random
  // stream included (its augmentation draws differ per rank).

  // A single process may not continue a 2-rank run.
  auto alone = testing::normexp("run " + (run_dir / "config.yaml").string() + " --resume");
  EXPECT_EQ(alone.code, 2) << alone.out;
  EXPECT_NE(alone.out.find("train.world_size"), std::string::npos) << alone.out;
  EXPECT_NE(alone.out.find("--nproc-per-node=2"), std::string::npos) << alone.out;

  const auto resumed = launch(dir, 2, (run_dir / "config.yaml").string() + " --resume", "u");
  ASSERT_EQ(resumed.codes, (std::vector<int>{0, 0})) << resumed.logs[0] << resumed.logs[1];
  const auto a = nlohmann::json::parse(read_file(only_run(straight_root) / "metrics.json"));
  const auto b = nlohmann::json::parse(read_file(run_dir / "metrics.json"));
  EXPECT_EQ(b["resumes"], 1);
  ASSERT_EQ(a["history"].size(), b["history"].size());
  for (size_t e = 0; e < a["history"].size(); ++e)
    for (const char* key : {"train_loss", "train_err", "test_loss", "test_err"})
      EXPECT_EQ(a["history"][e][key], b["history"][e][key]) << "epoch " << e + 1 << " " << key;
  EXPECT_EQ(max_model_difference(only_run(straight_root), run_dir), 0.0);
}

TEST_F(TwoRanks, AnExistingRunIsRefusedOnEveryRank) {
  const auto cfg = dir.write("c.yaml", kSmall + "norm: {name: gn}\n");
  const auto root = dir.path() / "r";
  const auto first = launch(dir, 2, cfg.string() + " --output " + root.string(), "a");
  ASSERT_EQ(first.codes, (std::vector<int>{0, 0}));
  const auto again = launch(dir, 2, cfg.string() + " --output " + root.string(), "b");
  EXPECT_EQ(again.codes, (std::vector<int>{3, 1}));
  EXPECT_NE(again.logs[0].find("already holds a run"), std::string::npos) << again.logs[0];
  EXPECT_NE(again.logs[1].find("rank 0 could not start the run"), std::string::npos)
      << again.logs[1];
  // --resume of a completed run: every rank returns at once.
  const auto done = launch(dir, 2, cfg.string() + " --output " + root.string() + " --resume", "c");
  EXPECT_EQ(done.codes, (std::vector<int>{0, 0})) << done.logs[0] << done.logs[1];
}

}  // namespace
}  // namespace normexp

namespace normexp {
namespace {

// `normexp plan --slurm` as sbatch would run it, with stand-ins for srun (runs the command,
// noting its pid) and scontrol (notes its arguments): a task SIGTERM'd at its time limit
// checkpoints, requeues itself, and the requeued task finishes the same run.
TEST(Slurm, PlanScriptRequeuesAfterSigtermAndTheRequeuedTaskResumes) {
  testing::TempDir dir;
  const auto cfg = dir.write("long.yaml", long_yaml());
  const auto spec = dir.write("long_table.yaml",
                              "title: long\nsource: {paper: x, table: y}\nmetric: final.test_err\n"
                              "rows: [{id: r, label: r}]\ncolumns: [{id: c, label: c}]\n"
                              "cells:\n  - {row: r, column: c, config: long.yaml}\n");
  const auto root = dir.path() / "results";
  auto plan = testing::normexp(
      "plan " + spec.string() + " --slurm --results " + root.string() + " --bin " +
      NORMEXP_BINARY + " --partition gpu --account proj --time 1:00:00 --throttle 3 "
      "--cpus-per-task 8 --sbatch --mem=32G --sbatch --constraint=h200");
  ASSERT_EQ(plan.code, 0) << plan.out;
  std::set<std::string> sbatch;
  std::istringstream lines(plan.out);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#SBATCH ", 0) == 0) sbatch.insert(line.substr(8));
  for (const char* want : {"--array=0-0%3", "--partition=gpu", "--account=proj", "--time=1:00:00",
                           "--ntasks=1", "--gpus-per-task=1", "--cpus-per-task=8", "--requeue",
                           "--signal=TERM@300", "--open-mode=append", "--mem=32G",
                           "--constraint=h200"})
    EXPECT_TRUE(sbatch.count(want)) << want << "\n" << plan.out;
  const auto job = dir.write("job.sh", plan.out);

  const auto fake = dir.path() / "fakebin";
  dir.write("fakebin/srun",
            "#!/bin/bash\necho $$ > " + (fake / "pid").string() +
                "\nwhile [[ $# -gt 0 && $1 == --* ]]; do shift; done\nexec \"$@\"\n");
  dir.write("fakebin/scontrol", "#!/bin/bash\necho \"$@\" >> " + (fake / "scontrol.log").string() + "\n");
  testing::shell("chmod +x " + (fake / "srun").string() + " " + (fake / "scontrol").string());
  const std::string env = "PATH=" + fake.string() + ":$PATH SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=77 ";
  const auto first = testing::shell(
      "bash -c '" + env + "bash " + job.string() + " > " + (dir.path() / "t1.log").string() +
      " 2>&1 & j=$!; " + after_claim(root, 1.5) + "; kill -TERM $(cat " + (fake / "pid").string() +
      "); wait $j; echo code=$?'");
  EXPECT_NE(first.out.find("code=130"), std::string::npos)
      << first.out << read_file(dir.path() / "t1.log");
  EXPECT_EQ(read_file(fake / "scontrol.log"), "requeue 77_0\n");

  const auto second = testing::shell("bash -c '" + env + "bash " + job.string() + "; echo code=$?'");
  EXPECT_NE(second.out.find("code=0"), std::string::npos) << second.out;
  const auto m = nlohmann::json::parse(read_file(only_run(root) / "metrics.json"));
  EXPECT_EQ(m["status"], "completed");
  EXPECT_EQ(m["resumes"], 1);
  auto straight = testing::normexp("run " + cfg.string() + " --output " +
                                   (dir.path() / "straight").string());
  ASSERT_EQ(straight.code, 0) << straight.out;
  const auto s = nlohmann::json::parse(read_file(only_run(dir.path() / "straight") / "metrics.json"));
  EXPECT_EQ(s["history"].back()["test_loss"], m["history"].back()["test_loss"]);
  EXPECT_EQ(read_file(fake / "scontrol.log"), "requeue 77_0\n");  // no second requeue

  // Data-parallel runs: the plan asks for N tasks and looks for N-rank runs.
  auto ranks = testing::normexp("plan " + spec.string() + " --slurm --ranks 4 --results " +
                                root.string());
  ASSERT_EQ(ranks.code, 0) << ranks.out;
  EXPECT_NE(ranks.out.find("#SBATCH --ntasks=4"), std::string::npos) << ranks.out;
  EXPECT_NE(ranks.out.find("train.world_size=4"), std::string::npos) << ranks.out;
  EXPECT_NE(ranks.out.find("1 missing"), std::string::npos) << ranks.out;  // not the 1-rank run
}

// `normexp launch`: a 4-command plan 2 at a time, one GPU id each, past a failure.
TEST(LocalLauncher, RunsAPlanTwoAtATimeOneGpuEachAndListsFailures) {
  testing::TempDir dir;
  const auto d = dir.path().string();
  // Each command notes its GPU and how many commands run while it does.
  auto command = [&](int k, int code) {
    return fmt::format(
        "touch {0}/run.{1}; echo $CUDA_VISIBLE_DEVICES > {0}/gpu.{1}; sleep 0.6; "
        "ls {0} | grep -c ^run. > {0}/seen.{1}; sleep 0.6; rm {0}/run.{1}; exit {2}",
        d, k, code);
  };
  const auto cfg = dir.write("c.yaml", kSmall + "norm: {name: gn}\n");
  const auto plan = dir.write(
      "plan.txt", "# a plan\n" + command(0, 0) + "\n" + command(1, 0) + "\n\n" + command(2, 3) +
                      "\n" + std::string(NORMEXP_BINARY) + " run " + cfg.string() + " --output " +
                      d + "/res --resume\n");
  auto r = testing::normexp("launch " + plan.string() + " --jobs 2 --gpus 0,1 --logs " + d +
                            "/logs");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("3 of 4 succeeded"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exit 3: " + command(2, 3)), std::string::npos) << r.out;
  // The first two ran together; never more than two at once.
  EXPECT_EQ(read_file(dir.path() / "seen.0"), "2\n");
  EXPECT_EQ(read_file(dir.path() / "seen.1"), "2\n");
  EXPECT_LE(std::stoi(read_file(dir.path() / "seen.2")), 2);
  // The two that ran together had different GPUs.
  EXPECT_NE(read_file(dir.path() / "gpu.0"), read_file(dir.path() / "gpu.1"));
  EXPECT_TRUE(fs::exists(only_run(dir.path() / "res") / "metrics.json"));
  EXPECT_TRUE(fs::exists(dir.path() / "logs/0003.log"));

  // An sbatch script is not a plan for launch.
  const auto sbatch = dir.write("job.sh", "#!/bin/bash\n#SBATCH --array=0-1\n");
  auto bad = testing::normexp("launch " + sbatch.string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("sbatch script"), std::string::npos) << bad.out;
}

// After each command, launch says how long the plan has left at the rate so far: one at a
// time, after the first of three 1-second commands, about twice the time that one took (not
// the time of one, nor of all three).
TEST(LocalLauncher, SaysHowLongThePlanHasLeft) {
  testing::TempDir dir;
  const auto plan = dir.write("plan.txt", "sleep 1\nsleep 1\nsleep 1\n");
  auto r = testing::normexp("launch " + plan.string() + " --jobs 1 --logs " +
                            (dir.path() / "logs").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto first = r.out.find("[1/3] exit 0 after ");
  ASSERT_NE(first, std::string::npos) << r.out;
  const double took = std::stod(r.out.substr(first + 19));
  const auto left = r.out.find("; 1/3 done, about ", first);
  ASSERT_NE(left, std::string::npos) << r.out;
  const double eta = std::stod(r.out.substr(left + 18));  // "2s": whole seconds
  EXPECT_GE(eta, 2 * took - 0.6) << r.out;
  EXPECT_LE(eta, 2 * took + 0.6) << r.out;
  EXPECT_NE(r.out.find("; 2/3 done, about "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("3/3 done"), std::string::npos) << r.out;  // nothing left: no ETA
}

}  // namespace
}  // namespace normexp
