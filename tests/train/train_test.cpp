// End to end, in process: a tiny CPU run and its results directory.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "train/progress.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"

namespace normexp::train {
namespace {

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The tiny run both Run.TinyRun* tests train: ten epochs of cwo with constant noise at lr 0.2.
std::vector<std::string> tiny_run_overrides(const std::filesystem::path& root, int seed) {
  return {"output.root=" + root.string(), "train.epochs=10", "norm.noise.schedule=constant",
          "norm.noise.sigma=0.1", "optim.lr=0.2", "seed=" + std::to_string(seed)};
}

TEST(Run, TinyRunWritesItsResultsDirectory) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      tiny_run_overrides(dir.path() / "res", 0));
  auto result = compose::run_experiment(exp);
  ASSERT_EQ(result.status, RunStatus::Completed);
  EXPECT_EQ(result.dir, dir.path() / "res" / "tiny" / exp.hash() / "seed0");

  const auto m = nlohmann::json::parse(read_file(result.dir / "metrics.json"));
  EXPECT_EQ(m["status"], "completed");
  EXPECT_EQ(m["hash"], exp.hash());
  EXPECT_EQ(m["epochs_completed"], 10);
  EXPECT_EQ(m["history"].size(), 10u);
  EXPECT_EQ(m["config"], exp.resolved());
  EXPECT_FALSE(m["versions"]["libtorch"].get<std::string>().empty());
  EXPECT_EQ(m["steps"], 10 * 8);  // 256 images / batch 32
  for (const auto& row : m["history"]) {
    EXPECT_GE(row["test_err"].get<double>(), 0.0);
    EXPECT_LE(row["test_err"].get<double>(), 100.0);
    EXPECT_LE(row["test_top5_err"].get<double>(), row["test_err"].get<double>());
    EXPECT_GT(row["images_per_s"].get<double>(), 0.0);
    // Step s (0-based) trains at cosine's 0.1 (1 + cos(π s / 80)) (80 steps, base 0.2, no
    // warmup); the row's rate is that of the epoch's last step, 8e - 1.
    const int64_t last_step = 8 * row["epoch"].get<int64_t>() - 1;
    EXPECT_NEAR(row["lr"].get<double>(), 0.1 * (1 + std::cos(M_PI * last_step / 80.0)), 1e-12)
        << "epoch " << row["epoch"];
  }
  EXPECT_EQ(m["final"], m["history"][9]);
  // "best" is the epoch of lowest test error (the first of equals), read back by hand.
  size_t best = 0;
  double worst_err = 0;
  for (size_t i = 0; i < m["history"].size(); ++i) {
    const double err = m["history"][i]["test_err"].get<double>();
    worst_err = std::max(worst_err, err);
    if (err < m["history"][best]["test_err"].get<double>()) best = i;
  }
  ASSERT_LT(m["history"][best]["test_err"].get<double>(), worst_err) << "every epoch alike";
  EXPECT_EQ(m["best"]["epoch"], m["history"][best]["epoch"]);
  EXPECT_EQ(m["best"]["test_err"], m["history"][best]["test_err"]);
  EXPECT_EQ(m["best"]["test_top5_err"], m["history"][best]["test_top5_err"]);

  EXPECT_EQ(lines_of(result.dir / "history.jsonl").size(), 10u);
  // config.yaml loads back to the same experiment.
  auto again = config::load_experiment(result.dir / "config.yaml", {}, registry::experiment_schema());
  EXPECT_EQ(again.hash(), exp.hash());
  // No temporary files left behind.
  for (const auto& f : std::filesystem::directory_iterator(result.dir))
    EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << f.path();

  // The same run again never overwrites the first; a new seed gets its own directory.
  EXPECT_THROW(compose::run_experiment(exp), RunExistsError);
  auto seed1 = testing::experiment_from(dir, testing::kTinyYaml,
                                        {"output.root=" + (dir.path() / "res").string(),
                                         "train.epochs=1", "norm.noise.schedule=constant",
                                         "norm.noise.sigma=0.1", "seed=1"});
  EXPECT_NE(seed1.hash(), exp.hash());  // epochs differ
}

// The tiny run learns: its training loss falls below 0.9 of the first epoch's on most seeds.
// Not on every seed: cwo at lr 0.2 on this 4-class task sometimes sits at ln 4 for all ten
// epochs (the slow start the README describes; 2 of 24 seeds measured 0.89 and 0.99, the rest
// 0.46-0.76). One seed alone made the test fail on any change to the random stream, e.g. a
// flip rate; with five, a run that learns on none (a broken step, a frozen layer) still fails.
TEST(Run, TinyRunsLearnOnMostSeeds) {
  testing::TempDir dir;
  int learned = 0;
  std::string ratios;
  for (int seed = 0; seed < 5; ++seed) {
    auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                        tiny_run_overrides(dir.path() / "res", seed));
    const auto r = compose::run_experiment(exp);
    ASSERT_EQ(r.status, RunStatus::Completed);
    const auto& h = r.metrics["history"];
    const double ratio = h[9]["train_loss"].get<double>() / h[0]["train_loss"].get<double>();
    learned += ratio < 0.9;
    ratios += fmt::format(" {:.2f}", ratio);
  }
  EXPECT_GE(learned, 3) << "last/first training loss per seed:" << ratios;
}

TEST(Run, SameSeedSameMetricsOnCpu) {
  testing::TempDir dir;
  auto a = testing::experiment_from(dir, testing::kTinyYaml,
                                    {"output.root=" + (dir.path() / "a").string(), "train.epochs=1"});
  auto b = testing::experiment_from(dir, testing::kTinyYaml,
                                    {"output.root=" + (dir.path() / "b").string(), "train.epochs=1"});
  EXPECT_EQ(a.hash(), b.hash());
  auto ra = compose::run_experiment(a), rb = compose::run_experiment(b);
  EXPECT_EQ(ra.metrics["final"]["train_loss"], rb.metrics["final"]["train_loss"]);
  EXPECT_EQ(ra.metrics["final"]["test_err"], rb.metrics["final"]["test_err"]);
}

// §4.1.3 of Ikami et al. 2021 (Table 2, fmnist_batch): lr = eta * B / base_batch. A run with
// the rule on must train exactly as one given the scaled rate by hand, so the rule reaches
// the optimizer and the schedule, not just the metrics; the unscaled rate must train
// otherwise, or the comparison could not fail.
TEST(Run, LinearScalingRuleTrainsAtEtaTimesBOverBaseBatch) {
  testing::TempDir dir;
  auto run = [&](const std::string& name, const std::vector<std::string>& extra) {
    std::vector<std::string> sets{"output.root=" + (dir.path() / name).string(),
                                  "train.epochs=2", "train.batch_size=8", "optim.lr=0.2"};
    sets.insert(sets.end(), extra.begin(), extra.end());  // applied in order: extra wins
    const auto r = compose::run_experiment(testing::experiment_from(dir, testing::kTinyYaml, sets));
    EXPECT_EQ(r.status, RunStatus::Completed) << name;
    return r.metrics;
  };
  const auto ruled = run("ruled", {"optim.scale_lr=true", "optim.base_batch=32"});
  const auto by_hand = run("by_hand", {"optim.lr=0.05"});  // 0.2 * 8 / 32
  const auto unscaled = run("unscaled", {});
  EXPECT_DOUBLE_EQ(ruled["effective"]["lr"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(unscaled["effective"]["lr"].get<double>(), 0.2);
  for (const char* key : {"train_loss", "test_loss", "lr"})
    EXPECT_EQ(ruled["final"][key], by_hand["final"][key]) << key;
  EXPECT_NE(ruled["final"]["train_loss"], unscaled["final"]["train_loss"]);
}

TEST(Run, NonFiniteLossStopsWithStatusDiverged) {
  testing::TempDir dir;
  // A learning rate of 1e30 overflows the affine scales within a few steps.
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"output.root=" + (dir.path() / "res").string(),
                                       "optim.lr=1e30", "train.epochs=3"});
  auto result = compose::run_experiment(exp);
  EXPECT_EQ(result.status, RunStatus::Diverged);
  const auto m = nlohmann::json::parse(read_file(result.dir / "metrics.json"));
  EXPECT_EQ(m["status"], "diverged");
  EXPECT_EQ(m["diverged_epoch"], 1);
  EXPECT_EQ(m["epochs_completed"], 0);
  // A diverged run is finished: --resume reports it and leaves it as it is (training it
  // again would only diverge again, and a sweep's --resume would spend a run on it).
  const std::string before = read_file(result.dir / "metrics.json");
  compose::RunOptions resume;
  resume.resume = true;
  const auto again = compose::run_experiment(exp, resume);
  EXPECT_EQ(again.status, RunStatus::Diverged);
  EXPECT_EQ(read_file(result.dir / "metrics.json"), before);
}

TEST(Run, MaxStepsStopsEarly) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"output.root=" + (dir.path() / "res").string(),
                                       "train.max_steps=5"});
  auto result = compose::run_experiment(exp);
  EXPECT_EQ(result.status, RunStatus::Completed);
  EXPECT_EQ(result.metrics["steps"], 5);
  EXPECT_EQ(result.metrics["epochs_completed"], 1);
}

TEST(Run, InterruptAndResumeEqualsAnUninterruptedRun) {
  testing::TempDir dir;
  const std::vector<std::string> common{"train.epochs=4", "train.deterministic=true",
                                        "norm.noise.schedule=linear", "norm.noise.sigma=0.5",
                                        "optim.lr=0.2"};
  auto with_root = [&](const std::string& root) {
    auto sets = common;
    sets.push_back("output.root=" + (dir.path() / root).string());
    return testing::experiment_from(dir, testing::kTinyYaml, sets);
  };
  auto straight = compose::run_experiment(with_root("straight"));
  ASSERT_EQ(straight.status, RunStatus::Completed);

  // 8 steps per epoch: stop mid-epoch 2 (step 13), and at the end of epoch 3 (step 24).
  for (int64_t stop_at : {13, 24}) {
    SCOPED_TRACE(stop_at);
    const std::string root = "resumed" + std::to_string(stop_at);
    auto exp = with_root(root);
    compose::RunOptions interrupt;
    interrupt.interrupt_at_step = stop_at;
    auto first = compose::run_experiment(exp, interrupt);
    ASSERT_EQ(first.status, RunStatus::Interrupted);
    EXPECT_EQ(first.metrics["status"], "interrupted");
    EXPECT_EQ(first.metrics["steps"], stop_at);
    EXPECT_TRUE(std::filesystem::exists(first.dir / "checkpoint.pt"));
    EXPECT_THROW(compose::run_experiment(exp), RunExistsError);  // never continued without --resume

    compose::RunOptions resume;
    resume.resume = true;
    auto second = compose::run_experiment(with_root(root), resume);
    ASSERT_EQ(second.status, RunStatus::Completed);
    EXPECT_EQ(second.metrics["resumes"], 1);
    EXPECT_EQ(second.metrics["steps"], straight.metrics["steps"]);
    ASSERT_EQ(second.metrics["history"].size(), straight.metrics["history"].size());
    for (size_t e = 0; e < straight.metrics["history"].size(); ++e) {
      for (const char* key : {"train_loss", "train_err", "test_loss", "test_err", "lr"})
        EXPECT_EQ(second.metrics["history"][e][key], straight.metrics["history"][e][key])
            << "epoch " << e + 1 << " " << key;
    }
    // Resuming a completed run does nothing.
    auto third = compose::run_experiment(with_root(root), resume);
    EXPECT_EQ(third.status, RunStatus::Completed);
    EXPECT_EQ(third.metrics["resumes"], 1);
  }
}

TEST(Run, ResumeStartsARunThatDoesNotExist) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml,
                                      {"output.root=" + (dir.path() / "res").string(),
                                       "train.epochs=1"});
  compose::RunOptions resume;
  resume.resume = true;
  auto r = compose::run_experiment(exp, resume);
  EXPECT_EQ(r.status, RunStatus::Completed);
  EXPECT_EQ(r.metrics["resumes"], 0);
  EXPECT_TRUE(std::filesystem::exists(r.dir / "checkpoint.pt"));  // written at the end
}

// The ETA and elapsed times of the progress bar and the epoch log: seconds to the nearest,
// m:ss under an hour, h:mm:ss above; "?" where there is no estimate yet (NaN, negative).
TEST(Progress, DurationsReadAsSecondsMinutesAndHours) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(61), "1:01");
  EXPECT_EQ(format_duration(3599), "59:59");
  EXPECT_EQ(format_duration(3600), "1:00:00");
  EXPECT_EQ(format_duration(2 * 3600 + 2 * 60 + 2), "2:02:02");
  EXPECT_EQ(format_duration(30 * 3600 + 5), "30:00:05");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
}

}  // namespace
}  // namespace normexp::train
