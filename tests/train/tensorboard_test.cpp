// TensorBoard event files: the CRC and framing against known values, and a run's file read
// back by TensorBoard's own reader (PyPI's tensorboard, installed by the test command in a
// virtual environment) and compared with history.jsonl, across an interrupt and a resume.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "compose/run.h"
#include "config/test_support.h"
#include "core/fs.h"
#include "core/tensorboard.h"
#include "support/cli.h"
#include "support/ml_support.h"

namespace normexp {
namespace {

namespace fs = std::filesystem;

TEST(TensorBoardFormat, Crc32cAndRecordFraming) {
  // CRC-32C's check value (RFC 3720 / iSCSI): a plain CRC-32 or a wrong reflection fails it.
  EXPECT_EQ(tensorboard::crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(tensorboard::crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  const std::string data = "hello";
  const std::string r = tensorboard::frame_record(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  EXPECT_EQ(static_cast<unsigned char>(r[0]), 5);  // little-endian length
  for (int i = 1; i < 8; ++i) EXPECT_EQ(r[i], 0);
  EXPECT_EQ(r.substr(12, 5), data);
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) crc |= static_cast<uint32_t>(static_cast<unsigned char>(r[17 + i])) << (8 * i);
  EXPECT_EQ(crc, tensorboard::masked_crc32c(data));
}

fs::path tensorboard_python() {
  if (const char* p = std::getenv("NORMEXP_TB_PYTHON")) return p;
  return NORMEXP_TB_PYTHON;
}

TEST(TensorBoardLog, ReadByTensorBoardItselfAcrossAResume) {
  const auto python = tensorboard_python();
  if (!fs::exists(python))
    GTEST_SKIP() << python << " missing: scripts/test.sh installs PyPI's tensorboard there";
  testing::TempDir dir;
  auto exp = testing::experiment_from(
      dir, testing::kTinyYaml, {"train.epochs=4", "output.root=" + (dir.path() / "r").string()});
  compose::RunOptions stop;
  stop.interrupt_at_step = 12;  // in epoch 2 (8 steps an epoch)
  ASSERT_EQ(compose::run_experiment(exp, stop).status, train::RunStatus::Interrupted);
  compose::RunOptions resume;
  resume.resume = true;
  const auto r = compose::run_experiment(exp, resume);
  ASSERT_EQ(r.status, train::RunStatus::Completed);
  ASSERT_TRUE(fs::exists(r.dir / "events.out.tfevents.normexp"));
  const auto check = testing::shell(python.string() + " " + NORMEXP_SOURCE_DIR +
                                    "/tests/train/tensorboard_check.py " + r.dir.string());
  EXPECT_EQ(check.code, 0) << check.out;
  EXPECT_NE(check.out.find("OK"), std::string::npos) << check.out;

  // A diverged run (a learning rate of 1e30 overflows within its first epoch) ends its
  // session as a failure, not a success: TensorBoard's hparams view filters runs by it.
  auto diverged = testing::experiment_from(
      dir, testing::kTinyYaml,
      {"optim.lr=1e30", "output.root=" + (dir.path() / "diverged").string()});
  const auto d = compose::run_experiment(diverged);
  ASSERT_EQ(d.status, train::RunStatus::Diverged);
  const auto check_diverged = testing::shell(python.string() + " " + NORMEXP_SOURCE_DIR +
                                             "/tests/train/tensorboard_check.py " +
                                             d.dir.string());
  EXPECT_EQ(check_diverged.code, 0) << check_diverged.out;

  // output.tensorboard: false writes none.
  auto off = testing::experiment_from(
      dir, testing::kTinyYaml,
      {"output.tensorboard=false", "output.root=" + (dir.path() / "off").string()});
  const auto o = compose::run_experiment(off);
  EXPECT_FALSE(fs::exists(o.dir / "events.out.tfevents.normexp"));
}

}  // namespace
}  // namespace normexp
