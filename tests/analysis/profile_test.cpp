// The profiler wrapper against calls we can count: which ops ran, how often per call, and
// the order by time. A wrapper that did not switch the profiler on, summed the wrong device's
// events or forgot to divide by the number of calls fails here.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "analysis/profile.h"
#include "core/fs.h"

namespace normexp::analysis {
namespace {

const nlohmann::json* row_named(const nlohmann::json& j, const std::string& name) {
  for (const auto& r : j["rows"])
    if (r["name"] == name) return &r;
  return nullptr;
}

TEST(Profile, CountsEachOpPerCallAndPutsTheLongestFirst) {
  auto big = torch::randn({384, 384});
  auto small = torch::randn({8});
  const auto p = profile_calls(
      [&] {
        for (int i = 0; i < 3; ++i) big = torch::mm(big, big).tanh_();
        small = torch::sigmoid(small);
        small = torch::sigmoid(small);
      },
      /*calls=*/4, torch::Device(torch::kCPU));
  EXPECT_EQ(p.calls, 4);
  EXPECT_EQ(p.what, "cpu ops (inclusive)");
  const auto j = profile_json(p, 100);
  const auto* mm = row_named(j, "aten::mm");
  const auto* sigmoid = row_named(j, "aten::sigmoid");
  ASSERT_NE(mm, nullptr) << j.dump(1);
  ASSERT_NE(sigmoid, nullptr) << j.dump(1);
  EXPECT_DOUBLE_EQ((*mm)["calls_per_call"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ((*sigmoid)["calls_per_call"].get<double>(), 2.0);
  // A 384^3 matrix product takes far longer than a sigmoid of 8 numbers.
  EXPECT_GT((*mm)["us_per_call"].get<double>(), 10 * (*sigmoid)["us_per_call"].get<double>());
  for (size_t i = 1; i < p.rows.size(); ++i) EXPECT_GE(p.rows[i - 1].total_us, p.rows[i].total_us);
  // Inclusive CPU times have no meaningful sum.
  EXPECT_TRUE(j["per_call_us"].is_null());

  // `top` keeps the longest rows.
  const auto top1 = profile_json(p, 1);
  ASSERT_EQ(top1["rows"].size(), 1u);
  EXPECT_EQ(top1["rows"][0]["name"], p.rows.front().name);
  EXPECT_EQ(top1["distinct"].get<size_t>(), p.rows.size());
}

TEST(Profile, NothingOutsideTheProfiledCallsIsCounted) {
  auto a = torch::randn({64, 64});
  for (int i = 0; i < 5; ++i) a = torch::mm(a, a).tanh_();  // before: not ours
  const auto p = profile_calls([&] { a = torch::sigmoid(a); }, 2, torch::Device(torch::kCPU));
  const auto j = profile_json(p, 100);
  EXPECT_EQ(row_named(j, "aten::mm"), nullptr) << j.dump(1);
  ASSERT_NE(row_named(j, "aten::sigmoid"), nullptr);
  // And a second profile starts from zero.
  const auto again = profile_json(profile_calls([&] { a = torch::sigmoid(a); }, 1,
                                                torch::Device(torch::kCPU)),
                                  100);
  EXPECT_DOUBLE_EQ((*row_named(again, "aten::sigmoid"))["calls_per_call"].get<double>(), 1.0);
}

TEST(Profile, WritesTheTraceAndATableOfCellSafeNames) {
  const auto dir = std::filesystem::temp_directory_path() / "normexp_profile_test";
  std::filesystem::create_directories(dir);
  const auto trace = (dir / "trace.json").string();
  auto a = torch::randn({16, 16});
  const auto p = profile_calls([&] { a = torch::mm(a, a); }, 1, torch::Device(torch::kCPU), trace);
  // Debian's LibTorch has no Kineto and cannot write traces: then the profile is kept and
  // the note says why.
  if (p.trace_note.empty()) {
    EXPECT_NE(read_file(trace).find("aten::mm"), std::string::npos);
  } else {
    EXPECT_NE(p.trace_note.find("Kineto"), std::string::npos) << p.trace_note;
    EXPECT_FALSE(std::filesystem::exists(trace));
  }
  ASSERT_FALSE(p.rows.empty());
  std::filesystem::remove_all(dir);

  Profile fake;
  fake.what = "cuda kernels and copies";
  fake.calls = 2;
  fake.total_us = 30;
  fake.rows = {{"void kernel<a|b>(" + std::string(200, 'x') + ")", 4, 20}, {"memcpy", 2, 10}};
  const auto table = profile_table(profile_json(fake, 10), 40);
  EXPECT_NE(table.find("15.0 us busy"), std::string::npos) << table;
  EXPECT_NE(table.find("| void kernel<a/b>(xxxx"), std::string::npos) << table;  // no stray |
  EXPECT_NE(table.find("| 2 | 10.0 | 66.7 % |"), std::string::npos) << table;
  EXPECT_NE(table.find("| memcpy | 1 | 5.0 | 33.3 % |"), std::string::npos) << table;
}

}  // namespace
}  // namespace normexp::analysis
