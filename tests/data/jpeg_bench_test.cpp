// `normexp data bench-jpeg`: the images it times are the ones its options describe (sizes read
// back from the files, one folder per recipe, reuse only of identical images), every image is
// counted in every mode and worker count, bad options are refused by name.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/core.h>
#include <gtest/gtest.h>

#include "config/test_support.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/jpeg.h"
#include "data/jpeg_bench.h"
#include "support/cli.h"

namespace normexp::data {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

struct FolderStats {
  int64_t files = 0;
  double mean_bytes = 0, mean_width = 0, mean_height = 0;
  std::map<std::string, std::string> contents;
};

// What is on disk, measured independently of the bench: file sizes and the JPEG headers.
FolderStats stats_of(const fs::path& folder) {
  FolderStats s;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string data = read_file(e.path());
    JpegInfo info;
    EXPECT_TRUE(read_jpeg_header(reinterpret_cast<const unsigned char*>(data.data()),
                                 data.size(), info))
        << e.path();
    ++s.files;
    s.mean_bytes += static_cast<double>(data.size());
    s.mean_width += info.width;
    s.mean_height += info.height;
    s.contents[e.path().filename().string()] = data;
  }
  if (s.files > 0) {
    s.mean_bytes /= static_cast<double>(s.files);
    s.mean_width /= static_cast<double>(s.files);
    s.mean_height /= static_cast<double>(s.files);
  }
  return s;
}

JpegBenchOptions small(const fs::path& dir) {
  JpegBenchOptions o;
  o.dir = dir;
  o.images = 10;
  o.width = 64;
  o.height = 48;
  o.quality = 80;
  o.batch = 4;  // 10 images: batches of 4, 4 and 2
  o.workers = {1, 2};
  o.seed = 3;
  return o;
}

TEST(JpegBench, TimesEveryImageInBothModesAndEveryWorkerCountAndReportsTheFilesSizes) {
  if (!built_with_turbojpeg()) GTEST_SKIP() << "built without libjpeg-turbo";
  TempDir dir;
  auto opt = small(dir.path());
  // on_row sees each row as it is timed (the command prints them so), before the return.
  std::vector<JpegBenchRow> seen;
  opt.on_row = [&](const JpegBenchRow& row) { seen.push_back(row); };
  const auto r = bench_jpeg_loader(opt);
  ASSERT_EQ(seen.size(), r.rows.size());
  for (size_t k = 0; k < seen.size(); ++k) {
    EXPECT_EQ(seen[k].workers, r.rows[k].workers);
    EXPECT_EQ(seen[k].train, r.rows[k].train);
    EXPECT_DOUBLE_EQ(seen[k].images_per_s, r.rows[k].images_per_s);
  }
  const fs::path folder = jpeg_bench_folder(opt) / "c0";
  const auto disk = stats_of(folder);
  EXPECT_EQ(disk.files, 10);

  ASSERT_EQ(r.rows.size(), 4U);
  const std::pair<bool, int> expected[] = {{true, 1}, {true, 2}, {false, 1}, {false, 2}};
  for (size_t k = 0; k < r.rows.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(r.rows[k].train, expected[k].first);
    EXPECT_EQ(r.rows[k].workers, expected[k].second);
    EXPECT_EQ(r.rows[k].images, 10);  // the last, partial batch too
    EXPECT_GT(r.rows[k].images_per_s, 0);
    EXPECT_TRUE(std::isfinite(r.rows[k].images_per_s));
  }
  EXPECT_DOUBLE_EQ(r.mean_bytes, disk.mean_bytes);
  EXPECT_DOUBLE_EQ(r.mean_width, disk.mean_width);
  EXPECT_DOUBLE_EQ(r.mean_height, disk.mean_height);
  // Sizes vary by up to 30 % around the asked mean, and do vary.
  for (const auto& [name, data] : disk.contents) {
    JpegInfo info;
    ASSERT_TRUE(read_jpeg_header(reinterpret_cast<const unsigned char*>(data.data()),
                                 data.size(), info));
    EXPECT_GE(info.width, 0.7 * 64 - 1) << name;
    EXPECT_LE(info.width, 1.3 * 64) << name;
    EXPECT_GE(info.height, 0.7 * 48 - 1) << name;
    EXPECT_LE(info.height, 1.3 * 48) << name;
  }
  EXPECT_NE(r.mean_width, 64.0);
}

TEST(JpegBench, ReusesOnlyTheSameRecipesImagesAndGrowsTheSetIdentically) {
  if (!built_with_turbojpeg()) GTEST_SKIP() << "built without libjpeg-turbo";
  TempDir dir;
  auto opt = small(dir.path());
  opt.workers = {1};
  opt.images = 4;
  bench_jpeg_loader(opt);
  const fs::path folder = jpeg_bench_folder(opt) / "c0";
  const auto first = stats_of(folder);
  ASSERT_EQ(first.files, 4);

  // A larger set keeps the first four byte for byte and adds the ones a fresh call writes.
  opt.images = 6;
  const auto grown = bench_jpeg_loader(opt);
  const auto after = stats_of(folder);
  ASSERT_EQ(after.files, 6);
  for (const auto& [name, data] : first.contents) EXPECT_EQ(after.contents.at(name), data) << name;
  TempDir fresh_dir;
  auto fresh_opt = opt;
  fresh_opt.dir = fresh_dir.path();
  bench_jpeg_loader(fresh_opt);
  EXPECT_EQ(stats_of(jpeg_bench_folder(fresh_opt) / "c0").contents, after.contents);
  EXPECT_DOUBLE_EQ(grown.mean_width, after.mean_width);

  // Other sizes, quality or seed: other images, in a folder of their own; the means follow.
  auto wide = opt;
  wide.width = 128;
  const auto r = bench_jpeg_loader(wide);
  EXPECT_NE(jpeg_bench_folder(wide), jpeg_bench_folder(opt));
  EXPECT_GT(r.mean_width, 0.7 * 128 - 1);
  EXPECT_EQ(stats_of(jpeg_bench_folder(wide) / "c0").mean_width, r.mean_width);
  auto other_seed = opt;
  other_seed.seed = 4;
  bench_jpeg_loader(other_seed);
  EXPECT_NE(stats_of(jpeg_bench_folder(other_seed) / "c0").contents, after.contents);
  auto other_quality = opt;
  other_quality.quality = 30;
  const auto q = bench_jpeg_loader(other_quality);
  EXPECT_LT(q.mean_bytes, grown.mean_bytes);
}

TEST(JpegBench, BadOptionsAreRefusedByName) {
  TempDir dir;
  const auto refused = [&](auto change, const std::string& name) {
    auto opt = small(dir.path());
    change(opt);
    try {
      bench_jpeg_loader(opt);
      ADD_FAILURE() << "accepted bad " << name;
    } catch (const RunError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  refused([](JpegBenchOptions& o) { o.images = 0; }, "--images");
  refused([](JpegBenchOptions& o) { o.batch = 0; }, "--batch");
  refused([](JpegBenchOptions& o) { o.width = 0; }, "--width");
  refused([](JpegBenchOptions& o) { o.height = -5; }, "--height");
  refused([](JpegBenchOptions& o) { o.quality = 101; }, "--quality");
  refused([](JpegBenchOptions& o) { o.workers = {1, 0}; }, "--workers");
  refused([](JpegBenchOptions& o) { o.workers.clear(); }, "--workers");
  EXPECT_FALSE(fs::exists(dir.path() / "bench")) << "a refused call wrote images";
}

TEST(JpegBench, TheCommandPrintsOneRowPerModeAndWorkerCount) {
  if (!built_with_turbojpeg()) GTEST_SKIP() << "built without libjpeg-turbo";
  TempDir dir;
  const auto r = testing::normexp(fmt::format(
      "data bench-jpeg --dir {} --images 5 --width 40 --height 32 --batch 2 --workers 1 "
      "--workers 3",
      dir.path().string()));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("# 5 JPEGs, mean "), std::string::npos) << r.out;
  for (const char* row : {"| train (random-resized crop + flip) | 1 |",
                          "| train (random-resized crop + flip) | 3 |",
                          "| eval (resize 256 + centre crop) | 1 |",
                          "| eval (resize 256 + centre crop) | 3 |"})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
  const auto bad = testing::normexp(
      fmt::format("data bench-jpeg --dir {} --images 5 --batch 0", dir.path().string()));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("--batch"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace normexp::data
