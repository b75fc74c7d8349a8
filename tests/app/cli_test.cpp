// The normexp binary as a user sees it: exit codes, messages, nothing written on bad input.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "config/test_support.h"
#include "core/fs.h"
#include "support/cli.h"

namespace normexp {
namespace {

using testing::CliResult;

CliResult sh(const std::string& args) { return testing::normexp(args); }

const char* kConfig = R"(name: cli
data: {name: synthetic, classes: 3, train_size: 64, test_size: 32, resolution: 8}
model: {name: cnn9, width: 0.125}
norm: {name: bn}
optim: {lr: 0.05}
train: {epochs: 1, batch_size: 16, threads: 1}
)";

TEST(Cli, BadConfigExits2WithEveryProblemAndWritesNothing) {
  testing::TempDir dir;
  const auto cfg = dir.write("bad.yaml", R"(name: bad
optim:
  lrr: 0.1
train:
  batch_size: 0
  epochs: two
)");
  const auto out = dir.path() / "res";
  auto r = sh("run " + cfg.string() + " --output " + out.string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("bad.yaml:3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("optim.lrr"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("did you mean 'lr'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bad.yaml:5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train.batch_size"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("train.epochs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 problems"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(Cli, ComponentLevelErrorsAlsoExit2BeforeWriting) {
  testing::TempDir dir;
  const auto cfg = dir.write("c.yaml", kConfig);
  const auto out = dir.path() / "res";
  auto r = sh("run " + cfg.string() + " --output " + out.string() +
              " --set norm.name=cwo --set norm.noise.sigma=0.3");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("norm.noise.sigma"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(Cli, RunThenRerunThenValidateThenList) {
  testing::TempDir dir;
  const auto cfg = dir.write("c.yaml", kConfig);
  const auto out = dir.path() / "res";
  auto r = sh("run " + cfg.string() + " --output " + out.string() + " --seed 3");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("status: completed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seed3/metrics.json"), std::string::npos) << r.out;

  auto again = sh("run " + cfg.string() + " --output " + out.string() + " --seed 3");
  EXPECT_EQ(again.code, 3) << again.out;
  EXPECT_NE(again.out.find("already holds a run (status: completed)"), std::string::npos)
      << again.out;

  auto v = sh("validate " + cfg.string() + " --set optim.lr=0.2");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_NE(v.out.find("lr: 0.2"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("# hash "), std::string::npos) << v.out;

  auto typed = sh("validate " + cfg.string() + " --set optim.lr=fast");
  EXPECT_EQ(typed.code, 2) << typed.out;
  EXPECT_NE(typed.out.find("--set optim.lr=fast"), std::string::npos) << typed.out;

  auto l = sh("list");
  EXPECT_EQ(l.code, 0) << l.out;
  for (const char* name : {"synthetic", "cnn9", "bn", "cwo", "sgd", "cosine", "multistep",
                           "linear", "noise.sigma", "weight_decay"})
    EXPECT_NE(l.out.find(name), std::string::npos) << name;
}

TEST(Cli, DivergedRunExits4) {
  testing::TempDir dir;
  const auto cfg = dir.write("c.yaml", kConfig);
  auto r = sh("run " + cfg.string() + " --output " + (dir.path() / "res").string() +
              " --set norm.name=cwo --set optim.lr=1e30");
  EXPECT_EQ(r.code, 4) << r.out;
  EXPECT_NE(r.out.find("status: diverged"), std::string::npos) << r.out;
}

// A run of a few seconds per epoch on one thread, for tests that interrupt or race it; the
// train section comes last so a test can add keys to it.
std::string long_run_yaml(int epochs) {
  return "name: long\n"
         "data: {name: synthetic, classes: 5, train_size: 3000, test_size: 200, resolution: 16}\n"
         "model: {name: cnn9, width: 0.25}\nnorm: {name: cwo}\noptim: {lr: 0.05}\n"
         "train:\n  epochs: " + std::to_string(epochs) +
         "\n  batch_size: 64\n  threads: 1\n  progress: plain\n";
}

TEST(Cli, SigintWritesACheckpointAndResumeFinishesTheSameRun) {
  testing::TempDir dir;
  // Long enough (a few seconds on one thread) to be interrupted part way.
  const auto cfg = dir.write("long.yaml", long_run_yaml(4) + "  deterministic: true\n");
  const std::string bin = NORMEXP_BINARY;
  const auto a = dir.path() / "a", b = dir.path() / "b";
  auto straight = sh("run " + cfg.string() + " --output " + a.string());
  ASSERT_EQ(straight.code, 0) << straight.out;

  const auto log = dir.path() / "first.log";
  const std::string cmd = bin + " run " + cfg.string() + " --output " + b.string() + " > " +
                          log.string() + " 2>&1 & pid=$!; sleep 1.5; kill -INT $pid; wait $pid; "
                          "echo code=$?";
  const std::string out = testing::shell("sh -c '" + cmd + "'").out;
  ASSERT_NE(out.find("code=130"), std::string::npos) << out;

  // The hint alone continues the same run: the run's config.yaml carries name, seed, every
  // --set and the output root (the config file and the flags need not be repeated).
  const std::string first = read_file(log);
  const std::string marker = "continue with: normexp ";
  const auto at = first.find(marker);
  ASSERT_NE(at, std::string::npos) << first;
  const std::string hint = first.substr(at + marker.size(), first.find(')', at) - at - marker.size());
  EXPECT_NE(hint.find(b.string()), std::string::npos) << hint;
  auto resumed = sh(hint);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;
  // The final line of metrics printed by both runs is identical.
  auto final_line = [](const std::string& text) {
    const auto at = text.find("final (epoch");
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  };
  EXPECT_FALSE(final_line(straight.out).empty()) << straight.out;
  EXPECT_EQ(final_line(resumed.out), final_line(straight.out));
}

// `run --help`: "a second signal exits at once with 128 + signal, leaving status 'running':
// --resume continues from the last checkpoint". INT then TERM, back to back: the run must not
// finish its step and write the interrupted checkpoint (the first signal's way out). The two
// may be handled on two threads at once, in either order: 130 or 143, never the graceful path.
TEST(Cli, ASecondSignalExitsAtOnceAndResumeStillFinishesTheRun) {
  testing::TempDir dir;
  const auto cfg = dir.write("long.yaml", long_run_yaml(3));
  const std::string bin = NORMEXP_BINARY;
  const auto out = dir.path() / "r", log = dir.path() / "first.log";
  const std::string cmd =
      bin + " run " + cfg.string() + " --output " + out.string() + " > " + log.string() +
      " 2>&1 & pid=$!; "
      "for i in $(seq 100); do [ -f " + out.string() + "/long/*/seed0/config.yaml ] && break; "
      "sleep 0.1; done; sleep 1; kill -INT $pid; kill -TERM $pid; wait $pid; echo code=$?";
  const std::string text = testing::shell("sh -c '" + cmd + "'").out;
  const std::string first = read_file(log);
  EXPECT_TRUE(text.find("code=143") != std::string::npos ||
              text.find("code=130") != std::string::npos)
      << text;
  EXPECT_EQ(first.find("continue with"), std::string::npos) << "took the graceful way:\n" << first;
  std::filesystem::path run_dir;
  for (const auto& e : std::filesystem::directory_iterator(out / "long"))
    run_dir = e.path() / "seed0";
  const auto metrics = run_dir / "metrics.json";
  // Absent when the signals came before the first epoch ended.
  if (std::filesystem::exists(metrics))
    EXPECT_EQ(read_file(metrics).find("\"interrupted\""), std::string::npos) << read_file(metrics);
  const auto resumed = sh("run " + cfg.string() + " --output " + out.string() + " --resume");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_NE(read_file(metrics).find("\"status\": \"completed\""), std::string::npos)
      << read_file(metrics);
}

// The README tells Slurm users to always pass --resume, so a requeued task can start while the
// first is still running: the second process must not train into the same directory.
TEST(Cli, ASecondWriterOfALiveRunExits3) {
  testing::TempDir dir;
  const auto cfg = dir.write("long.yaml", long_run_yaml(20));
  const std::string bin = NORMEXP_BINARY;
  const auto out = dir.path() / "r";
  // The first writer runs in the background; the second starts once the first has claimed.
  const std::string cmd =
      bin + " run " + cfg.string() + " --output " + out.string() +
      " > /dev/null 2>&1 & pid=$!; "
      "for i in $(seq 100); do [ -f " + out.string() + "/long/*/seed0/config.yaml ] && break; "
      "sleep 0.1; done; " +
      bin + " run " + cfg.string() + " --output " + out.string() + " --resume; echo code=$?; " +
      "kill -INT $pid; wait $pid";
  const std::string text = testing::shell("sh -c '" + cmd + "'").out;
  EXPECT_NE(text.find("code=3"), std::string::npos) << text;
  EXPECT_NE(text.find("is being written by another normexp (pid"), std::string::npos) << text;
}

// Hydra's way: KEY=VALUE (or ~KEY, +KEY, ++KEY) after the config, mixed with --set in the order
// written; the same run (hash) as --set. A second config is refused, not taken for a key.
TEST(Cli, HydraStyleOverridesAfterTheConfigInTheOrderWritten) {
  testing::TempDir dir;
  const std::string cfg = dir.write("c.yaml", kConfig).string();
  const auto validate = [&](const std::string& args) {
    const CliResult r = sh("validate " + cfg + " " + args);
    EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
    return r.out;
  };
  const auto has = [](const std::string& out, const std::string& line) {
    return out.find("\n  " + line + "\n") != std::string::npos;
  };
  const std::string hash_of_set = validate("--set optim.lr=0.2");
  const std::string hash_of_arg = validate("optim.lr=0.2");
  EXPECT_TRUE(has(hash_of_arg, "lr: 0.2")) << hash_of_arg;
  EXPECT_EQ(hash_of_arg.substr(0, hash_of_arg.find("# results")),
            hash_of_set.substr(0, hash_of_set.find("# results")));
  EXPECT_TRUE(has(validate("optim.lr=0.3 --set optim.lr=0.4"), "lr: 0.4"));
  EXPECT_TRUE(has(validate("--set optim.lr=0.4 optim.lr=0.3"), "lr: 0.3"));
  const std::string hydra = validate("+train.epochs=2 ++train.batch_size=8 '~optim.lr'");
  EXPECT_TRUE(has(hydra, "epochs: 2")) << hydra;
  EXPECT_TRUE(has(hydra, "batch_size: 8")) << hydra;
  EXPECT_TRUE(has(hydra, "lr: 0.1")) << hydra;  // the default once the file's 0.05 is removed

  const CliResult two = sh("run " + cfg + " " + cfg + " --output " + dir.path().string() + "/res");
  EXPECT_EQ(two.code, 2) << two.out;
  EXPECT_NE(two.out.find("argument '" + cfg + "': expected KEY=VALUE or ~KEY after the config"),
            std::string::npos)
      << two.out;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "res"));
}

TEST(Cli, HelpAndUsageErrors) {
  auto h = sh("run --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("--set"), std::string::npos);
  EXPECT_NE(h.out.find("Exit codes"), std::string::npos);
  // A second signal exits at once with 128 + signal: both codes are documented.
  EXPECT_NE(h.out.find("(130, 143)"), std::string::npos) << h.out;
  EXPECT_EQ(sh("frobnicate").code, 2);
  EXPECT_EQ(sh("run /no/such/file.yaml").code, 2);
}

}  // namespace
}  // namespace normexp
