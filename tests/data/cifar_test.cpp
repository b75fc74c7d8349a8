// CIFAR reading and `normexp data prepare|fetch`, on tiny files the tests write in the official
// binary layouts (a few records per file instead of 10000).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#ifdef NORMEXP_WITH_LIBARCHIVE
#include <archive.h>
#include <archive_entry.h>
#endif

#include "core/error.h"
#include "data/cifar.h"
#include "data/prepare.h"
#include "registry/builtin.h"
#include "support/cli.h"
#include "support/ml_support.h"

namespace normexp::data {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A pixel value that differs across channel, row and column (and record and file), so any
// mix-up of the planar layout changes the tensor.
uint8_t pixel(int file, int64_t n, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>((file * 71 + n * 37 + c * 89 + y * 13 + x * 3) % 256);
}

// One file of `labels.size()` records. CIFAR-10: {label}; CIFAR-100: {coarse, fine}.
std::string cifar_bytes(CifarVariant v, const std::vector<std::vector<int>>& labels, int file = 0) {
  std::string out;
  for (size_t n = 0; n < labels.size(); ++n) {
    for (int l : labels[n]) out.push_back(static_cast<char>(l));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.push_back(static_cast<char>(pixel(file, n, c, y, x)));
  }
  EXPECT_EQ(out.size(), labels.size() * static_cast<size_t>(cifar_record_bytes(v)));
  return out;
}

torch::Tensor expected_images(int file, int64_t n) {
  auto t = torch::empty({n, 3, 32, 32}, torch::kUInt8);
  auto a = t.accessor<uint8_t, 4>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) a[i][c][y][x] = pixel(file, i, c, y, x);
  return t;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const RunError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a RunError";
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// The official layouts with `per_file` records in every file.
CifarLayout tiny_layout(CifarVariant v, int64_t per_file) {
  auto l = official_cifar_layout(v);
  for (auto* files : {&l.train, &l.test})
    for (auto& f : *files) f.records = per_file;
  return l;
}

// Writes every file of `layout` under dir/layout.dir; labels cycle through 0..classes-1 (fine)
// and 0..19 (coarse), so the coarse and fine labels of a record differ.
std::vector<std::pair<std::string, std::string>> tiny_files(CifarVariant v,
                                                             const CifarLayout& layout) {
  std::vector<std::pair<std::string, std::string>> files;
  int file = 0;
  for (const auto* split : {&layout.train, &layout.test})
    for (const auto& f : *split) {
      std::vector<std::vector<int>> labels;
      for (int64_t n = 0; n < f.records; ++n) {
        const int fine = static_cast<int>((file * 3 + n) % (v == CifarVariant::Cifar10 ? 10 : 100));
        if (v == CifarVariant::Cifar10)
          labels.push_back({fine});
        else
          labels.push_back({fine % 20 == fine ? (fine + 1) % 20 : fine % 20, fine});
      }
      files.push_back({layout.dir + "/" + f.name, cifar_bytes(v, labels, file++)});
    }
  return files;
}

void write_tiny_dataset(const TempDir& dir, const std::string& root, CifarVariant v,
                        const CifarLayout& layout) {
  for (const auto& [name, bytes] : tiny_files(v, layout)) dir.write(root + "/" + name, bytes);
}

// ---- reader ------------------------------------------------------------------------------

TEST(CifarReader, Cifar10PlanarBytesLandAtNCYX) {
  TempDir dir;
  auto bytes = cifar_bytes(CifarVariant::Cifar10, {{3}, {0}, {9}});
  // Record 1, pixel (y=5, x=7): R, G and B planes are 1024 bytes apart after the label byte.
  const size_t rec = 3073, at = rec * 1 + 1 + 5 * 32 + 7;
  bytes[at] = static_cast<char>(200);
  bytes[at + 1024] = static_cast<char>(100);
  bytes[at + 2048] = static_cast<char>(50);
  const auto path = dir.write("b.bin", bytes);

  auto r = read_cifar_file(path, CifarVariant::Cifar10, 3);
  ASSERT_EQ(r.images.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  EXPECT_EQ(r.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(r.images[1][0][5][7].item<int64_t>(), 200);
  EXPECT_EQ(r.images[1][1][5][7].item<int64_t>(), 100);
  EXPECT_EQ(r.images[1][2][5][7].item<int64_t>(), 50);
  auto expected = expected_images(0, 3);
  expected[1][0][5][7] = 200;
  expected[1][1][5][7] = 100;
  expected[1][2][5][7] = 50;
  EXPECT_TRUE(torch::equal(r.images, expected));
  EXPECT_EQ(r.labels.scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(r.labels, torch::tensor({3, 0, 9}, torch::kLong)));
  EXPECT_FALSE(r.coarse_labels.defined());
}

TEST(CifarReader, Cifar100HasCoarseThenFineLabel) {
  TempDir dir;
  auto bytes = cifar_bytes(CifarVariant::Cifar100, {{4, 57}, {19, 99}});
  bytes[2 + 1024 + 32 * 31 + 31] = static_cast<char>(123);  // record 0, G, (31, 31)
  const auto path = dir.write("train.bin", bytes);
  auto r = read_cifar_file(path, CifarVariant::Cifar100, 2);
  EXPECT_TRUE(torch::equal(r.labels, torch::tensor({57, 99}, torch::kLong)));
  EXPECT_TRUE(torch::equal(r.coarse_labels, torch::tensor({4, 19}, torch::kLong)));
  EXPECT_EQ(r.images[0][1][31][31].item<int64_t>(), 123);
  EXPECT_EQ(r.images[1][2][3][4].item<int64_t>(), pixel(0, 1, 2, 3, 4));
}

TEST(CifarReader, TruncatedFileIsAnErrorNamingTheFile) {
  TempDir dir;
  auto bytes = cifar_bytes(CifarVariant::Cifar10, {{1}, {2}});
  const auto path = dir.write("data_batch_1.bin", bytes.substr(0, bytes.size() - 100));
  const auto msg = error_of([&] { read_cifar_file(path, CifarVariant::Cifar10, 2); });
  EXPECT_TRUE(contains(msg, path.string())) << msg;
  EXPECT_TRUE(contains(msg, "3073-byte records")) << msg;
  EXPECT_TRUE(contains(msg, std::to_string(bytes.size() - 100))) << msg;
}

TEST(CifarReader, WrongRecordCountIsAnError) {
  TempDir dir;
  const auto path = dir.write("test.bin", cifar_bytes(CifarVariant::Cifar100, {{1, 2}, {3, 4}}));
  const auto msg = error_of([&] { read_cifar_file(path, CifarVariant::Cifar100, 3); });
  EXPECT_TRUE(contains(msg, path.string())) << msg;
  EXPECT_TRUE(contains(msg, "holds 2 records")) << msg;
  EXPECT_TRUE(contains(msg, "expected 3")) << msg;
  // The same bytes are not a whole number of CIFAR-10 records (3074 vs 3073).
  EXPECT_TRUE(contains(error_of([&] { read_cifar_file(path, CifarVariant::Cifar10, 2); }),
                       "not a whole number"));
}

TEST(CifarReader, LabelOutOfRangeIsAnError) {
  TempDir dir;
  const auto c10 = dir.write("a.bin", cifar_bytes(CifarVariant::Cifar10, {{9}, {10}}));
  auto msg = error_of([&] { read_cifar_file(c10, CifarVariant::Cifar10, 2); });
  EXPECT_TRUE(contains(msg, c10.string()) && contains(msg, "record 1 has label 10") &&
              contains(msg, "0..9"))
      << msg;
  const auto fine = dir.write("b.bin", cifar_bytes(CifarVariant::Cifar100, {{0, 100}}));
  msg = error_of([&] { read_cifar_file(fine, CifarVariant::Cifar100, 1); });
  EXPECT_TRUE(contains(msg, "fine label 100") && contains(msg, "0..99")) << msg;
  const auto coarse = dir.write("c.bin", cifar_bytes(CifarVariant::Cifar100, {{20, 5}}));
  msg = error_of([&] { read_cifar_file(coarse, CifarVariant::Cifar100, 1); });
  EXPECT_TRUE(contains(msg, "coarse label 20") && contains(msg, "0..19")) << msg;
}

TEST(CifarReader, MissingFileIsAnError) {
  TempDir dir;
  const auto msg = error_of(
      [&] { read_cifar_file(dir.path() / "nope.bin", CifarVariant::Cifar10, 10000); });
  EXPECT_TRUE(contains(msg, "nope.bin") && contains(msg, "10000 records")) << msg;
  EXPECT_TRUE(contains(msg, "missing")) << msg;
  // Something that exists but cannot be read is not "missing".
  std::filesystem::create_directories(dir.path() / "data_batch_1.bin");
  const auto not_file = error_of(
      [&] { read_cifar_file(dir.path() / "data_batch_1.bin", CifarVariant::Cifar10, 10000); });
  EXPECT_TRUE(contains(not_file, "not a regular file") && !contains(not_file, "missing"))
      << not_file;
}

// ---- datasets ----------------------------------------------------------------------------

TEST(CifarDataset, LoadsEveryFileOfTheLayoutInOrder) {
  TempDir dir;
  const auto layout = tiny_layout(CifarVariant::Cifar10, 2);
  write_tiny_dataset(dir, "root", CifarVariant::Cifar10, layout);
  CifarDataset ds(CifarVariant::Cifar10, dir.path() / "root", CifarLabel::Fine, layout);
  EXPECT_EQ(ds.train_size(), 10);
  EXPECT_EQ(ds.shape().classes, 10);
  auto d = ds.load();
  ASSERT_EQ(d.train_x.sizes(), (std::vector<int64_t>{10, 3, 32, 32}));
  ASSERT_EQ(d.test_x.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  // data_batch_1..5 in order, then test_batch (file index 5).
  for (int file = 0; file < 5; ++file)
    EXPECT_TRUE(torch::equal(d.train_x.slice(0, 2 * file, 2 * file + 2), expected_images(file, 2)))
        << file;
  EXPECT_TRUE(torch::equal(d.test_x, expected_images(5, 2)));
  EXPECT_TRUE(torch::equal(d.train_y.slice(0, 0, 4), torch::tensor({0, 1, 3, 4}, torch::kLong)));
  EXPECT_TRUE(torch::equal(d.test_y, torch::tensor({5, 6}, torch::kLong)));
  ASSERT_EQ(d.mean.size(), 3u);
  ASSERT_EQ(d.std.size(), 3u);
  const double mean_r = d.train_x.select(1, 0).to(torch::kDouble).mean().item<double>() / 255;
  EXPECT_NEAR(d.mean[0], mean_r, 1e-9);
  EXPECT_TRUE(contains(d.description, "cifar10 (")) << d.description;
  EXPECT_TRUE(contains(d.description, "10 train / 2 test")) << d.description;
}

TEST(CifarDataset, Cifar100TargetIsFineByDefaultCoarseOnRequest) {
  TempDir dir;
  const auto layout = tiny_layout(CifarVariant::Cifar100, 3);
  write_tiny_dataset(dir, "root", CifarVariant::Cifar100, layout);
  const auto root = dir.path() / "root";
  auto fine = CifarDataset(CifarVariant::Cifar100, root, CifarLabel::Fine, layout).load();
  auto coarse = CifarDataset(CifarVariant::Cifar100, root, CifarLabel::Coarse, layout).load();
  EXPECT_TRUE(torch::equal(fine.train_y, torch::tensor({0, 1, 2}, torch::kLong)));
  EXPECT_TRUE(torch::equal(coarse.train_y, torch::tensor({1, 2, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(fine.train_x, coarse.train_x));
  EXPECT_EQ(fine.shape.classes, 100);
  EXPECT_EQ(coarse.shape.classes, 20);
  EXPECT_TRUE(contains(coarse.description, "coarse")) << coarse.description;

  // Through the config: `label` defaults to fine.
  auto make = [&](const std::string& extra) {
    auto exp = testing::experiment_from(
        dir, "data: {name: cifar100, root: " + root.string() + extra + "}\n");
    return registry::datasets().get("cifar100").make(exp.section("data"));
  };
  EXPECT_EQ(make("")->shape().classes, 100);
  EXPECT_EQ(make(", label: fine")->shape().classes, 100);
  EXPECT_EQ(make(", label: coarse")->shape().classes, 20);
  EXPECT_THROW(make(", label: medium"), ConfigError);
}

TEST(CifarDataset, RegisteredDatasetsDeclareTheOfficialShapeWithoutFiles) {
  TempDir dir;
  for (const std::string name : {"cifar10", "cifar100"}) {
    auto exp = testing::experiment_from(
        dir, "data: {name: " + name + ", root: " + (dir.path() / "none").string() + "}\n");
    auto ds = registry::datasets().get(name).make(exp.section("data"));
    EXPECT_EQ(ds->train_size(), 50000) << name;
    const auto s = ds->shape();
    EXPECT_EQ(s.channels, 3);
    EXPECT_EQ(s.height, 32);
    EXPECT_EQ(s.width, 32);
    EXPECT_EQ(s.classes, name == "cifar10" ? 10 : 100);
  }
}

TEST(CifarDataset, MissingDataSaysHowToGetIt) {
  TempDir dir;
  for (const std::string name : {"cifar10", "cifar100"}) {
    const auto root = (dir.path() / "data").string();
    auto exp = testing::experiment_from(dir, "data: {name: " + name + ", root: " + root + "}\n");
    auto ds = registry::datasets().get(name).make(exp.section("data"));
    const auto msg = error_of([&] { ds->load(); });
    const std::string archive = name == "cifar10" ? "cifar-10-binary.tar.gz" : "cifar-100-binary.tar.gz";
    EXPECT_TRUE(contains(msg, "normexp data prepare " + name + " --from " + archive + " --root " + root))
        << msg;
    EXPECT_TRUE(contains(msg, "normexp data fetch " + name + " --root " + root)) << msg;
    EXPECT_TRUE(contains(msg, kCifarPage)) << msg;
  }
  // The python version next to it is pointed out.
  std::filesystem::create_directories(dir.path() / "data" / "cifar-10-batches-py");
  CifarDataset ds(CifarVariant::Cifar10, dir.path() / "data", CifarLabel::Fine,
                  official_cifar_layout(CifarVariant::Cifar10));
  EXPECT_TRUE(contains(error_of([&] { ds.load(); }), "python version"));
}

TEST(CifarDataset, OfficialLayoutsAndArchives) {
  const auto c10 = official_cifar_layout(CifarVariant::Cifar10);
  EXPECT_EQ(c10.dir, "cifar-10-batches-bin");
  ASSERT_EQ(c10.train.size(), 5u);
  EXPECT_EQ(c10.train[4].name, "data_batch_5.bin");
  EXPECT_EQ(c10.train_records(), 50000);
  EXPECT_EQ(c10.test_records(), 10000);
  const auto c100 = official_cifar_layout(CifarVariant::Cifar100);
  EXPECT_EQ(c100.dir, "cifar-100-binary");
  EXPECT_EQ(c100.train_records(), 50000);
  EXPECT_EQ(c100.test.at(0).name, "test.bin");
  EXPECT_EQ(official_cifar_archive(CifarVariant::Cifar10).md5, "c32a1d4ab5d03f1284b67883e8d87530");
  EXPECT_EQ(official_cifar_archive(CifarVariant::Cifar100).md5, "03b5dce01913d631647c71ecec9e9cb8");
  EXPECT_EQ(cifar_variant("cifar100"), CifarVariant::Cifar100);
  EXPECT_THROW(cifar_variant("cifar1000"), RunError);
}

// ---- prepare / fetch ---------------------------------------------------------------------

TEST(Md5, MatchesKnownDigests) {
  if (!built_with_openssl()) GTEST_SKIP() << "built without OpenSSL";
  TempDir dir;
  EXPECT_EQ(md5_file(dir.write("abc", "abc")), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_file(dir.write("empty", "")), "d41d8cd98f00b204e9800998ecf8427e");
}

// Leftovers of a failed prepare/fetch: anything in root besides what a test put there.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

struct Entry {
  std::string name, content;
  enum Kind { File, Dir, Symlink } kind = File;
};

#ifdef NORMEXP_WITH_LIBARCHIVE
void write_tar_gz(const fs::path& out, const std::vector<Entry>& list) {
  struct archive* a = archive_write_new();
  archive_write_add_filter_gzip(a);
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, out.c_str()), ARCHIVE_OK);
  for (const auto& e : list) {
    struct archive_entry* en = archive_entry_new();
    archive_entry_set_pathname(en, e.name.c_str());
    if (e.kind == Entry::Dir) {
      archive_entry_set_filetype(en, AE_IFDIR);
      archive_entry_set_perm(en, 0755);
    } else if (e.kind == Entry::Symlink) {
      archive_entry_set_filetype(en, AE_IFLNK);
      archive_entry_set_symlink(en, e.content.c_str());
      archive_entry_set_perm(en, 0777);
    } else {
      archive_entry_set_filetype(en, AE_IFREG);
      archive_entry_set_perm(en, 0644);
      archive_entry_set_size(en, static_cast<la_int64_t>(e.content.size()));
    }
    ASSERT_EQ(archive_write_header(a, en), ARCHIVE_OK) << archive_error_string(a);
    if (e.kind == Entry::File) {
      ASSERT_EQ(archive_write_data(a, e.content.data(), e.content.size()),
                static_cast<la_ssize_t>(e.content.size()));
    }
    archive_entry_free(en);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}
#endif

// An archive in the official layout (tiny files) plus what a test adds.
std::vector<Entry> tiny_archive(CifarVariant v, const CifarLayout& layout) {
  std::vector<Entry> list{{layout.dir + "/", "", Entry::Dir}};
  for (auto& [name, bytes] : tiny_files(v, layout)) list.push_back({name, bytes});
  list.push_back({layout.dir + "/readme.txt", "not data"});
  return list;
}

class Prepare : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!built_with_libarchive() || !built_with_openssl())
      GTEST_SKIP() << "built without libarchive or OpenSSL";
#ifndef NORMEXP_WITH_LIBARCHIVE
    GTEST_SKIP() << "tests built without libarchive";
#endif
  }
  fs::path archive(const std::vector<Entry>& list, const std::string& name = "a.tar.gz") {
    const auto p = dir_.path() / name;
#ifdef NORMEXP_WITH_LIBARCHIVE
    write_tar_gz(p, list);
#else
    (void)list;
#endif
    return p;
  }
  PrepareOptions options(CifarVariant v, const fs::path& archive, int64_t per_file) {
    PrepareOptions o;
    o.variant = v;
    o.archive = archive;
    o.root = dir_.path() / "data";
    o.expected_md5 = md5_file(archive);
    o.layout = tiny_layout(v, per_file);
    return o;
  }
  TempDir dir_;
};

TEST_F(Prepare, ChecksExtractsAndPutsTheFilesInPlace) {
  for (auto v : {CifarVariant::Cifar10, CifarVariant::Cifar100}) {
    SCOPED_TRACE(cifar_name(v));
    const auto layout = tiny_layout(v, 2);
    auto opt = options(v, archive(tiny_archive(v, layout), cifar_name(v) + ".tar.gz"), 2);
    const auto dest = prepare_cifar(opt);
    EXPECT_EQ(dest, opt.root / layout.dir);
    for (const auto* split : {&layout.train, &layout.test})
      for (const auto& f : *split)
        EXPECT_EQ(fs::file_size(dest / f.name), 2u * cifar_record_bytes(v)) << f.name;
    EXPECT_TRUE(fs::exists(dest / "readme.txt"));
    auto d = CifarDataset(v, opt.root, CifarLabel::Fine, layout).load();
    EXPECT_EQ(d.train_x.size(0), layout.train_records());
    EXPECT_TRUE(torch::equal(d.test_x, expected_images(static_cast<int>(layout.train.size()), 2)));
  }
  // Only the two dataset directories remain: no temporary directory is left behind.
  EXPECT_EQ(entries(dir_.path() / "data"),
            (std::vector<std::string>{"cifar-10-batches-bin", "cifar-100-binary"}));
}

TEST_F(Prepare, ReplacesAnExistingCopy) {
  const auto v = CifarVariant::Cifar10;
  const auto layout = tiny_layout(v, 1);
  auto opt = options(v, archive(tiny_archive(v, layout)), 1);
  dir_.write("data/cifar-10-batches-bin/stale.txt", "old");
  prepare_cifar(opt);
  EXPECT_FALSE(fs::exists(opt.root / layout.dir / "stale.txt"));
  EXPECT_TRUE(fs::exists(opt.root / layout.dir / "test_batch.bin"));
  EXPECT_EQ(entries(opt.root), (std::vector<std::string>{"cifar-10-batches-bin"}));
}

TEST_F(Prepare, WrongMd5IsRefusedBeforeAnythingIsWritten) {
  const auto v = CifarVariant::Cifar10;
  auto opt = options(v, archive(tiny_archive(v, tiny_layout(v, 1))), 1);
  const auto actual = opt.expected_md5;
  opt.expected_md5 = "0123456789ABCDEF0123456789abcdef";
  const auto msg = error_of([&] { prepare_cifar(opt); });
  EXPECT_TRUE(contains(msg, actual)) << msg;
  EXPECT_TRUE(contains(msg, "0123456789abcdef0123456789abcdef")) << msg;
  EXPECT_FALSE(fs::exists(opt.root));
  // Without --md5 the official sum is expected, and named.
  opt.expected_md5.clear();
  EXPECT_TRUE(contains(error_of([&] { prepare_cifar(opt); }), "c32a1d4ab5d03f1284b67883e8d87530"));
  opt.expected_md5 = "xyz";
  EXPECT_TRUE(contains(error_of([&] { prepare_cifar(opt); }), "32 hexadecimal digits"));
  EXPECT_FALSE(fs::exists(opt.root));
}

TEST_F(Prepare, EntriesEscapingTheDirectoryAreRefused) {
  const auto v = CifarVariant::Cifar10;
  const auto layout = tiny_layout(v, 1);
  struct Case {
    Entry bad;
    std::string why;
  };
  const std::vector<Case> cases{
      {{layout.dir + "/../../escaped.bin", "x"}, "'..'"},
      {{"../escaped.bin", "x"}, "'..'"},
      {{(dir_.path() / "escaped.bin").string(), "x"}, "absolute path"},
      {{layout.dir + "/link", "/etc", Entry::Symlink}, "is a link"},
  };
  int k = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.bad.name);
    // The bad entry comes after the good files, so extraction has already started.
    auto list = tiny_archive(v, layout);
    list.push_back(c.bad);
    auto opt = options(v, archive(list, "bad" + std::to_string(k++) + ".tar.gz"), 1);
    const auto msg = error_of([&] { prepare_cifar(opt); });
    EXPECT_TRUE(contains(msg, "refusing archive")) << msg;
    EXPECT_TRUE(contains(msg, c.why)) << msg;
    EXPECT_EQ(entries(opt.root), std::vector<std::string>{});  // nothing extracted, no temp dir
    EXPECT_FALSE(fs::exists(dir_.path() / "escaped.bin"));
  }
}

TEST_F(Prepare, IncompleteOrForeignArchivesAreRefused) {
  const auto v = CifarVariant::Cifar10;
  const auto layout = tiny_layout(v, 2);
  auto list = tiny_archive(v, layout);
  list.erase(std::remove_if(list.begin(), list.end(),
                            [](const Entry& e) { return contains(e.name, "test_batch"); }),
             list.end());
  auto opt = options(v, archive(list), 2);
  auto msg = error_of([&] { prepare_cifar(opt); });
  EXPECT_TRUE(contains(msg, "test_batch.bin")) << msg;
  EXPECT_EQ(entries(opt.root), std::vector<std::string>{});

  // Records of the wrong count (the layout says 3 per file).
  opt = options(v, archive(tiny_archive(v, layout), "b.tar.gz"), 3);
  msg = error_of([&] { prepare_cifar(opt); });
  EXPECT_TRUE(contains(msg, "holds 2 records")) << msg;
  EXPECT_EQ(entries(opt.root), std::vector<std::string>{});

  // The CIFAR-100 archive given as CIFAR-10.
  const auto c100 = tiny_layout(CifarVariant::Cifar100, 2);
  opt = options(v, archive(tiny_archive(CifarVariant::Cifar100, c100), "c.tar.gz"), 2);
  msg = error_of([&] { prepare_cifar(opt); });
  EXPECT_TRUE(contains(msg, "no cifar-10-batches-bin/")) << msg;
  EXPECT_EQ(entries(opt.root), std::vector<std::string>{});

  // Not an archive at all.
  opt.archive = dir_.write("notes.tar.gz", "hello");
  opt.expected_md5 = md5_file(opt.archive);
  msg = error_of([&] { prepare_cifar(opt); });
  EXPECT_TRUE(contains(msg, "notes.tar.gz")) << msg;
  EXPECT_EQ(entries(opt.root), std::vector<std::string>{});
}

TEST(Fetch, UnreachableHostFailsCleanlyWithTheWayOut) {
  if (!built_with_curl() || !built_with_libarchive() || !built_with_openssl())
    GTEST_SKIP() << "built without libcurl, libarchive or OpenSSL";
  TempDir dir;
  FetchOptions f;
  f.variant = CifarVariant::Cifar100;
  f.root = dir.path() / "data";
  // Nothing listens on port 1, so this fails at once with or without network access.
  f.url = "http://127.0.0.1:1/cifar-100-binary.tar.gz";
  f.connect_timeout_s = 5;
  const auto msg = error_of([&] { fetch_cifar(f); });
  EXPECT_TRUE(contains(msg, f.url)) << msg;
  EXPECT_TRUE(contains(msg, "curl error 7")) << msg;
  EXPECT_TRUE(contains(msg, "normexp data prepare cifar100 --from cifar-100-binary.tar.gz")) << msg;
  EXPECT_EQ(entries(f.root), std::vector<std::string>{});  // the partial download is removed
}

// ---- the CLI ------------------------------------------------------------------------------

using testing::normexp;

TEST(DataCli, PrepareRefusesAWrongMd5WithBothSums) {
  if (!built_with_libarchive() || !built_with_openssl())
    GTEST_SKIP() << "built without libarchive or OpenSSL";
  TempDir dir;
  const auto archive = dir.write("cifar-10-binary.tar.gz", "not the real archive");
  const auto root = dir.path() / "data";
  auto r = normexp("data prepare cifar10 --from " + archive.string() + " --root " + root.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, md5_file(archive))) << r.out;
  EXPECT_TRUE(contains(r.out, "c32a1d4ab5d03f1284b67883e8d87530")) << r.out;
  r = normexp("data prepare cifar10 --from " + archive.string() + " --root " + root.string() +
              " --md5 " + md5_file(archive));  // the sum matches; it is not a tar.gz
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "cannot extract")) << r.out;
  EXPECT_EQ(entries(root), std::vector<std::string>{});
}

TEST(DataCli, UsageErrorsExit2) {
  TempDir dir;
  EXPECT_EQ(normexp("data prepare cifar10 --from " + (dir.path() / "missing.tar.gz").string()).code,
            2);
  EXPECT_EQ(normexp("data prepare mnist --from " + dir.write("a", "x").string()).code, 2);
  // ImageNet needs its three files; CIFAR its archive.
  EXPECT_EQ(normexp("data prepare imagenet --train " + dir.write("b", "x").string()).code, 2);
  EXPECT_EQ(normexp("data prepare cifar10").code, 2);
  EXPECT_EQ(normexp("data").code, 2);
}

TEST(DataCli, FetchWithoutNetworkExits1NamingTheUrl) {
  if (!built_with_curl()) GTEST_SKIP() << "built without libcurl";
  TempDir dir;
  const std::string url = "http://127.0.0.1:1/cifar-10-binary.tar.gz";
  const auto root = dir.path() / "data";
  auto r = normexp("data fetch cifar10 --root " + root.string() + " --url " + url);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.out, "cannot download " + url)) << r.out;
  EXPECT_TRUE(contains(r.out, "normexp data prepare cifar10 --from cifar-10-binary.tar.gz --root " +
                                  root.string()))
      << r.out;
}

}  // namespace
}  // namespace normexp::data
