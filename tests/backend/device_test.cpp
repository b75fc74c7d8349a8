// backend/device: which device a config's train section runs on, and how LibTorch is set up
// for a run (threads, deterministic kernels, the seed). Every run goes through these two.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <thread>

#include "backend/device.h"
#include "backend/torch_info.h"
#include "core/error.h"
#include "support/ml_support.h"

namespace normexp::backend {
namespace {

// LibTorch's process-wide settings, put back after each test.
class ConfigureTorch : public ::testing::Test {
 protected:
  ~ConfigureTorch() override {
    at::set_num_threads(threads_);
    at::globalContext().setDeterministicAlgorithms(deterministic_, /*warn_only=*/false);
  }
  config::Experiment experiment(const std::vector<std::string>& sets) {
    return testing::experiment_from(dir_, testing::kTinyYaml, sets);
  }
  testing::TempDir dir_;
  const int threads_ = at::get_num_threads();
  const bool deterministic_ = at::globalContext().deterministicAlgorithms();
};

// Catches train.threads: 0 meaning one thread instead of every core, train.deterministic
// not reaching LibTorch, and a seed that does not seed LibTorch's generator.
TEST_F(ConfigureTorch, ThreadsDeterminismAndSeedReachLibTorch) {
  const c10::Device cpu(c10::kCPU);
  configure_torch(experiment({"train.threads=0", "train.deterministic=true"}).section("train"), 7,
                  cpu);
  EXPECT_EQ(at::get_num_threads(),
            static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_TRUE(at::globalContext().deterministicAlgorithms());
  const auto draws = torch::rand({8});

  configure_torch(experiment({"train.threads=1", "train.deterministic=false"}).section("train"), 7,
                  cpu);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_FALSE(at::globalContext().deterministicAlgorithms());
  EXPECT_TRUE(torch::equal(torch::rand({8}), draws)) << "seed 7 twice, different draws";

  configure_torch(experiment({"train.threads=1"}).section("train"), 8, cpu);
  EXPECT_FALSE(torch::equal(torch::rand({8}), draws)) << "seeds 7 and 8, the same draws";
}

// device: cuda where there is none is the config's error, naming the key and the way out;
// auto falls back to the CPU.
TEST_F(ConfigureTorch, CudaWithoutADeviceIsAnErrorAndAutoFallsBack) {
  if (cuda_available()) GTEST_SKIP() << "this machine has a CUDA device";
  EXPECT_EQ(resolve_device(experiment({"train.device=auto"}).section("train")),
            c10::Device(c10::kCPU));
  const auto exp = experiment({"train.device=cuda"});
  try {
    resolve_device(exp.section("train"));
    FAIL() << "device: cuda resolved on a machine without CUDA";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("train.device"), std::string::npos) << what;
    EXPECT_NE(what.find("--device cpu"), std::string::npos) << what;
  }
}

// gpu is cuda (Lightning's name for it) on either kind of machine. Before, the config refused
// it with "did you mean 'cpu'?", and whoever took the hint trained on the CPU.
TEST_F(ConfigureTorch, GpuIsCuda) {
  EXPECT_EQ(device_for("cpu"), c10::Device(c10::kCPU));
  EXPECT_EQ(device_for("gpu"), device_for("cuda"));
  const auto exp = experiment({"train.device=gpu"});
  if (cuda_available()) {
    EXPECT_EQ(resolve_device(exp.section("train")), c10::Device(c10::kCUDA, 0));
    return;
  }
  EXPECT_EQ(device_for("gpu"), std::nullopt);
  try {
    resolve_device(exp.section("train"));
    FAIL() << "device: gpu resolved on a machine without CUDA";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("is 'gpu' but no CUDA device"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace normexp::backend
