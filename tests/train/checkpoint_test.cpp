// checkpoint.pt with named entries: what it holds, what it refuses, and that checkpoints of
// the first format (tensors by position, written before 2026-11-30) still resume exactly.
#include <gtest/gtest.h>
#include <unistd.h>
#include <torch/torch.h>

#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "backend/torch_compat.h"
#include "compose/components.h"
#include "compose/run.h"
#include "core/error.h"
#include "core/fs.h"
#include "nn/params.h"
#include "support/ml_support.h"
#include "train/checkpoint.h"
#include "train/run_directory.h"
#include "train/monitor.h"

namespace normexp::train {
namespace {

const c10::Device kCpu(c10::kCPU);

config::Experiment tiny(const testing::TempDir& dir, const std::string& root,
                        std::vector<std::string> sets = {}) {
  std::vector<std::string> all{"output.root=" + (dir.path() / root).string(), "train.epochs=3",
                               "train.deterministic=true", "norm.noise.schedule=constant",
                               "norm.noise.sigma=0.2", "optim.lr=0.2"};
  all.insert(all.end(), sets.begin(), sets.end());  // the caller's last: they may remove keys
  return testing::experiment_from(dir, testing::kTinyYaml, all);
}

compose::RunResult interrupted_at(const config::Experiment& exp, int64_t step) {
  compose::RunOptions o;
  o.interrupt_at_step = step;
  auto r = compose::run_experiment(exp, o);
  EXPECT_EQ(r.status, RunStatus::Interrupted);
  return r;
}

compose::RunResult resumed(const config::Experiment& exp) {
  compose::RunOptions o;
  o.resume = true;
  return compose::run_experiment(exp, o);
}

void expect_same_history(const nlohmann::json& a, const nlohmann::json& b) {
  ASSERT_EQ(a["history"].size(), b["history"].size());
  for (size_t e = 0; e < a["history"].size(); ++e)
    for (const char* key : {"train_loss", "train_err", "test_loss", "test_err", "lr"})
      EXPECT_EQ(a["history"][e][key], b["history"][e][key]) << "epoch " << e + 1 << " " << key;
}

// Rewrites a checkpoint in the first format, as the trainer wrote it before named entries:
// model_<i> in the order of named_parameters() then named_buffers() of the monitored model,
// optimizer state as optim_<i> with its name as bytes, progress as meta and loose tensors.
void rewrite_in_first_format(const config::Experiment& exp, const std::filesystem::path& file) {
  const Checkpoint ck = Checkpoint::load(file);
  auto parts = compose::build(exp, kCpu, [](std::unique_ptr<nn::NormScheme> s) {
    return std::make_unique<MonitoredScheme>(std::move(s));
  });
  std::vector<std::string> order;
  for (const auto& p : parts.model->named_parameters()) order.push_back(p.key());
  for (const auto& b : parts.model->named_buffers()) order.push_back(b.key());
  torch::serialize::OutputArchive ar;
  for (size_t i = 0; i < order.size(); ++i)
    ar.write("model_" + std::to_string(i), ck.model.at(nn::canonical_name(order[i])), true);
  ar.write("optim_count", torch::tensor(static_cast<int64_t>(ck.optimizer.size())), true);
  int64_t i = 0;
  for (const auto& [name, tensor] : ck.optimizer) {
    const auto key = "optim_" + std::to_string(i++);
    ar.write(key + "_name",
             torch::from_blob(const_cast<char*>(name.data()), {static_cast<int64_t>(name.size())},
                              torch::kUInt8)
                 .clone(),
             true);
    ar.write(key, tensor, true);
  }
  auto at = [&](const char* key) { return ck.progress.at(key); };
  ar.write("meta", torch::stack({at("step"), at("epoch"), at("next_batch"), at("seen")}), true);
  for (const char* key : {"train_time", "loss_sum", "correct", "order", "rng_cpu"})
    ar.write(key, at(key), true);
  std::ostringstream out;
  ar.save_to(out);
  write_file_atomic(file, out.str());
}

TEST(Checkpoint, HoldsTheModelByNameWithoutDecoratorSegments) {
  testing::TempDir dir;
  const auto exp = tiny(dir, "res");
  const auto r = interrupted_at(exp, 5);
  const Checkpoint ck = Checkpoint::load(r.dir / "checkpoint.pt");
  auto plain = compose::build(exp, kCpu);  // no monitor: the names of the model itself
  std::set<std::string> expected;
  for (const auto& p : plain.model->named_parameters()) expected.insert(p.key());
  for (const auto& b : plain.model->named_buffers()) expected.insert(b.key());
  std::set<std::string> saved;
  for (const auto& [name, t] : ck.model) saved.insert(name);
  EXPECT_EQ(saved, expected);
  EXPECT_FALSE(ck.optimizer.empty());  // SGD momentum buffers
  EXPECT_EQ(ck.progress.at("step").item<int64_t>(), 5);
  // The unmonitored model takes the monitored run's weights by name.
  ck.restore_model(*plain.model, "test");
  for (const auto& p : plain.model->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), ck.model.at(p.key()))) << p.key();
}

TEST(Checkpoint, FirstFormatOfAnInterruptedRunResumesToTheUninterruptedResult) {
  testing::TempDir dir;
  const auto straight = compose::run_experiment(tiny(dir, "straight"));
  ASSERT_EQ(straight.status, RunStatus::Completed);
  const auto exp = tiny(dir, "legacy");
  const auto first = interrupted_at(exp, 13);  // mid-epoch 2 (8 steps per epoch)
  rewrite_in_first_format(exp, first.dir / "checkpoint.pt");
  const auto second = resumed(exp);
  ASSERT_EQ(second.status, RunStatus::Completed);
  EXPECT_EQ(second.metrics["resumes"], 1);
  expect_same_history(second.metrics, straight.metrics);
}

TEST(Checkpoint, OneOfAnotherModelIsRefusedNamingTheEntry) {
  testing::TempDir dir;
  const auto narrow = tiny(dir, "a");
  const auto wide = tiny(dir, "b", {"model.width=0.25"});
  const auto bn = tiny(dir, "c", {"norm.name=bn", "~norm.noise"});
  const auto from = interrupted_at(narrow, 3).dir / "checkpoint.pt";
  for (const auto* exp : {&wide, &bn}) {
    const auto target = interrupted_at(*exp, 3).dir / "checkpoint.pt";
    std::filesystem::copy_file(from, target, std::filesystem::copy_options::overwrite_existing);
    try {
      resumed(*exp);
      ADD_FAILURE() << "a checkpoint of another model was accepted";
    } catch (const RunError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(target.string()), std::string::npos) << what;
      EXPECT_TRUE(what.find("has shape") != std::string::npos ||
                  what.find("has no") != std::string::npos ||
                  what.find("which the model lacks") != std::string::npos)
          << what;
    }
  }
}

TEST(Checkpoint, AFileThatIsNotACheckpointIsNamed) {
  testing::TempDir dir;
  const auto exp = tiny(dir, "res");
  const auto r = interrupted_at(exp, 3);
  write_file_atomic(r.dir / "checkpoint.pt", "not a zip archive");
  try {
    resumed(exp);
    ADD_FAILURE() << "a garbage checkpoint was accepted";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find((r.dir / "checkpoint.pt").string()), std::string::npos)
        << e.what();
  }
}

TEST(RunDirectory, AnUnparseableMetricsFileIsNamedOnResume) {
  testing::TempDir dir;
  const auto exp = tiny(dir, "res");
  const auto r = interrupted_at(exp, 3);
  write_file_atomic(r.dir / "metrics.json", "{\"status\": \"interr");  // cut short
  try {
    resumed(exp);
    ADD_FAILURE() << "a truncated metrics.json was accepted";
  } catch (const RunError& e) {
    EXPECT_NE(std::string(e.what()).find((r.dir / "metrics.json").string()), std::string::npos)
        << e.what();
  }
}

// One writer per run: the second RunDirectory of a live run (a --resume while it runs, or two
// --resumes of an interrupted run) is refused and names the holder; once the holder is gone,
// the run can be resumed.
TEST(RunDirectory, ASecondWriterIsRefusedNamingTheHolder) {
  testing::TempDir dir;
  const auto exp = tiny(dir, "res");
  interrupted_at(exp, 3);
  const std::string me = "pid " + std::to_string(::getpid());
  {
    RunDirectory first(exp, /*resume=*/true);
    try {
      RunDirectory second(exp, /*resume=*/true);
      ADD_FAILURE() << "two writers of one run";
    } catch (const RunExistsError& e) {
      EXPECT_NE(std::string(e.what()).find("being written by another normexp (" + me),
                std::string::npos)
          << e.what();
    }
  }
  // The lock went with the first. The next writer also removes what a killed one left.
  const auto r = RunDirectory::path_for(exp);
  write_file_atomic(r / "keep.txt", "x");
  std::filesystem::copy_file(r / "keep.txt", r / "metrics.json.tmp.999999");
  EXPECT_NO_THROW(RunDirectory(exp, /*resume=*/true));
  EXPECT_FALSE(std::filesystem::exists(r / "metrics.json.tmp.999999"));
  EXPECT_TRUE(std::filesystem::exists(r / "keep.txt"));

  // A new run holds the lock from its claim on: a --resume started right after waits its turn.
  const auto fresh = tiny(dir, "fresh");
  RunDirectory a(fresh, /*resume=*/false);
  a.claim();
  EXPECT_THROW(RunDirectory(fresh, /*resume=*/true), RunExistsError);
}

}  // namespace
}  // namespace normexp::train
