// Fashion-MNIST's IDX reader and dataset, on tiny files the tests write in the IDX format
// (gzip'd and plain), plus one check of the real files where Debian's package is installed.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/fashion_mnist.h"
#include "registry/builtin.h"
#include "support/ml_support.h"

namespace normexp::data {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using Files = FashionMnistFiles;

// Differs across image, row and column (and file, through `seed`), so a transposed, offset or
// mixed-up read changes the tensor.
uint8_t pixel(int seed, int64_t i, int64_t r, int64_t c) {
  return static_cast<uint8_t>((seed * 101 + i * 7 + r * 28 + c) % 256);
}

void be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

// An images file of `n` images of rows x cols (the header may claim another count).
std::string idx_images(int64_t n, int seed = 0, uint32_t rows = 28, uint32_t cols = 28,
                       int64_t header_n = -1) {
  std::string out;
  be32(out, 0x00000803);
  be32(out, static_cast<uint32_t>(header_n < 0 ? n : header_n));
  be32(out, rows);
  be32(out, cols);
  for (int64_t i = 0; i < n; ++i)
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t c = 0; c < cols; ++c) out.push_back(static_cast<char>(pixel(seed, i, r, c)));
  return out;
}

std::string idx_labels(const std::vector<int>& labels) {
  std::string out;
  be32(out, 0x00000801);
  be32(out, static_cast<uint32_t>(labels.size()));
  for (int l : labels) out.push_back(static_cast<char>(l));
  return out;
}

torch::Tensor expected_images(int64_t n, int seed = 0) {
  auto t = torch::empty({n, 28, 28}, torch::kUInt8);
  auto a = t.accessor<uint8_t, 3>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < 28; ++r)
      for (int64_t c = 0; c < 28; ++c) a[i][r][c] = pixel(seed, i, r, c);
  return t;
}

fs::path write_gz(const TempDir& dir, const std::string& relative, const std::string& bytes) {
  const auto p = dir.path() / relative;
  fs::create_directories(p.parent_path());
  gzFile f = gzopen(p.c_str(), "wb");
  EXPECT_NE(f, nullptr) << p;
  if (f == nullptr) return p;
  EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  EXPECT_EQ(gzclose(f), Z_OK);
  return p;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const RunError& e) {
    return e.what();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a RunError or ConfigError";
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Labels of the tiny datasets: record i of the train file has label (i * 3) % 10, of the test
// file (i * 7 + 1) % 10.
std::vector<int> tiny_labels(int64_t n, bool train) {
  std::vector<int> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back(static_cast<int>(train ? (i * 3) % 10 : (i * 7 + 1) % 10));
  return out;
}

// The four files under dir/root: train images with seed 1, test images with seed 2.
fs::path write_tiny_root(const TempDir& dir, int64_t train, int64_t test, bool gz,
                         const std::string& root = "fm") {
  auto put = [&](const char* name, const std::string& bytes) {
    if (gz)
      write_gz(dir, root + "/" + name + ".gz", bytes);
    else
      dir.write(root + "/" + name, bytes);
  };
  put(Files::kTrainImages, idx_images(train, 1));
  put(Files::kTrainLabels, idx_labels(tiny_labels(train, true)));
  put(Files::kTestImages, idx_images(test, 2));
  put(Files::kTestLabels, idx_labels(tiny_labels(test, false)));
  return dir.path() / root;
}

torch::Tensor labels_tensor(const std::vector<int>& labels) {
  return torch::tensor(std::vector<int64_t>(labels.begin(), labels.end()), torch::kLong);
}

// ---- reader ------------------------------------------------------------------------------

TEST(IdxReader, PixelsAndLabelsLandWhereTheyWereWritten) {
  for (const bool gz : {true, false}) {
    SCOPED_TRACE(gz ? "gzip" : "plain");
    TempDir dir;
    auto bytes = idx_images(3);
    bytes[16 + 784 * 1 + 28 * 5 + 7] = static_cast<char>(250);  // image 1, row 5, column 7
    const auto images =
        gz ? write_gz(dir, "i-idx3-ubyte.gz", bytes) : dir.write("i-idx3-ubyte", bytes);
    const auto labels =
        gz ? write_gz(dir, "l.gz", idx_labels({3, 0, 9})) : dir.write("l", idx_labels({3, 0, 9}));

    const auto x = read_idx_file(images, 3, 3);
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 28, 28}));
    EXPECT_EQ(x.scalar_type(), torch::kUInt8);
    EXPECT_EQ(x[1][5][7].item<int64_t>(), 250);
    EXPECT_EQ(x[1][7][5].item<int64_t>(), pixel(0, 1, 7, 5));
    EXPECT_EQ(x[2][27][0].item<int64_t>(), pixel(0, 2, 27, 0));
    auto expected = expected_images(3);
    expected[1][5][7] = 250;
    EXPECT_TRUE(torch::equal(x, expected));

    const auto y = read_idx_file(labels, 1, 3);
    EXPECT_EQ(y.scalar_type(), torch::kLong);
    EXPECT_TRUE(torch::equal(y, torch::tensor({3, 0, 9}, torch::kLong)));
  }
}

TEST(IdxReader, PrefersTheGzFileAndTakesEitherName) {
  TempDir dir;
  const auto plain = dir.write("t10k-images-idx3-ubyte", idx_images(2, 5));
  write_gz(dir, "t10k-images-idx3-ubyte.gz", idx_images(2, 6));
  const fs::path gz = plain.string() + ".gz";
  EXPECT_TRUE(torch::equal(read_idx_file(plain, 3, 2), expected_images(2, 6)));
  EXPECT_TRUE(torch::equal(read_idx_file(gz, 3, 2), expected_images(2, 6)));
  fs::remove(gz);
  EXPECT_TRUE(torch::equal(read_idx_file(plain, 3, 2), expected_images(2, 5)));
  EXPECT_TRUE(torch::equal(read_idx_file(gz, 3, 2), expected_images(2, 5)));
}

TEST(IdxReader, WrongMagicIsAnErrorSayingWhatItIs) {
  TempDir dir;
  // A labels file where images are expected.
  const auto labels = write_gz(dir, "labels.gz", idx_labels({1, 2}));
  auto msg = error_of([&] { read_idx_file(labels, 3, 2); });
  EXPECT_TRUE(contains(msg, labels.string())) << msg;
  EXPECT_TRUE(contains(msg, "magic number 0x00000801")) << msg;
  EXPECT_TRUE(contains(msg, "a labels file")) << msg;
  EXPECT_TRUE(contains(msg, "expected 0x00000803")) << msg;
  // Not IDX at all.
  const auto text = dir.write("text", "hello, world: not an IDX file at all");
  msg = error_of([&] { read_idx_file(text, 1, 2); });
  EXPECT_TRUE(contains(msg, text.string()) && contains(msg, "not an IDX file") &&
              contains(msg, "expected 0x00000801"))
      << msg;
}

TEST(IdxReader, ImagesOtherThan28x28AreAnError) {
  TempDir dir;
  const auto path = dir.write("i", idx_images(2, 0, 27, 28));
  const auto msg = error_of([&] { read_idx_file(path, 3, 2); });
  EXPECT_TRUE(contains(msg, path.string()) && contains(msg, "images are 27x28") &&
              contains(msg, "expected 28x28"))
      << msg;
  // The same bytes as 28x27.
  const auto wide = write_gz(dir, "w.gz", idx_images(2, 0, 28, 27));
  EXPECT_TRUE(contains(error_of([&] { read_idx_file(wide, 3, 2); }), "images are 28x27"));
}

TEST(IdxReader, TruncatedFilesAreAnError) {
  TempDir dir;
  const auto bytes = idx_images(3);
  const auto plain = dir.write("cut", bytes.substr(0, bytes.size() - 10));
  auto msg = error_of([&] { read_idx_file(plain, 3, 3); });
  EXPECT_TRUE(contains(msg, plain.string()) && contains(msg, "truncated") &&
              contains(msg, "2342 of the 2352 data bytes"))
      << msg;

  // A header cut short.
  const auto header = dir.write("header", bytes.substr(0, 10));
  msg = error_of([&] { read_idx_file(header, 3, 3); });
  EXPECT_TRUE(contains(msg, header.string()) && contains(msg, "truncated") &&
              contains(msg, "row count"))
      << msg;
  const auto empty = dir.write("empty", "");
  EXPECT_TRUE(contains(error_of([&] { read_idx_file(empty, 1, 3); }), "truncated or empty"));

  // A gzip file cut short, by a little (its trailer) and by a lot (the data).
  const auto gz = write_gz(dir, "full.gz", bytes);
  const auto compressed = read_bytes(gz);
  for (const size_t cut : {size_t{4}, compressed.size() / 2}) {
    SCOPED_TRACE(cut);
    const auto path = dir.write("cut.gz", compressed.substr(0, compressed.size() - cut));
    msg = error_of([&] { read_idx_file(path, 3, 3); });
    EXPECT_TRUE(contains(msg, path.string()) && contains(msg, "truncated")) << msg;
  }
}

TEST(IdxReader, DamagedGzipIsAnError) {
  TempDir dir;
  const auto gz = write_gz(dir, "full.gz", idx_images(2));
  auto compressed = read_bytes(gz);
  compressed[compressed.size() - 8] ^= 0x55;  // the CRC-32 of the trailer
  const auto path = dir.write("crc.gz", compressed);
  const auto msg = error_of([&] { read_idx_file(path, 3, 2); });
  EXPECT_TRUE(contains(msg, path.string()) && contains(msg, "damaged")) << msg;
}

TEST(IdxReader, TrailingBytesAreAnError) {
  TempDir dir;
  const auto bytes = idx_images(2) + "abcde";
  const auto plain = dir.write("plain", bytes);
  auto msg = error_of([&] { read_idx_file(plain, 3, 2); });
  EXPECT_TRUE(contains(msg, plain.string()) && contains(msg, "has 5 byte(s) after the 2 images"))
      << msg;
  const auto gz = write_gz(dir, "l.gz", idx_labels({1, 2, 3}) + std::string(1, '\0'));
  msg = error_of([&] { read_idx_file(gz, 1, 3); });
  EXPECT_TRUE(contains(msg, gz.string()) && contains(msg, "has 1 byte(s)") &&
              contains(msg, "after the 3 labels"))
      << msg;
}

TEST(IdxReader, CountOtherThanExpectedIsAnError) {
  TempDir dir;
  const auto path = write_gz(dir, "i.gz", idx_images(3));
  auto msg = error_of([&] { read_idx_file(path, 3, 4); });
  EXPECT_TRUE(contains(msg, path.string()) && contains(msg, "holds 3 images") &&
              contains(msg, "expected 4"))
      << msg;
  const auto labels = dir.write("l", idx_labels({1, 2}));
  msg = error_of([&] { read_idx_file(labels, 1, 60000); });
  EXPECT_TRUE(contains(msg, "holds 2 labels") && contains(msg, "expected 60000")) << msg;
  // A header claiming more images than the file has: a count mismatch, not a huge allocation.
  const auto liar = dir.write("liar", idx_images(1, 0, 28, 28, 1000000000));
  msg = error_of([&] { read_idx_file(liar, 3, 1); });
  EXPECT_TRUE(contains(msg, "holds 1000000000 images")) << msg;
}

TEST(IdxReader, LabelOutOfRangeNamesTheFirstBadRecord) {
  TempDir dir;
  const auto path = write_gz(dir, "labels.gz", idx_labels({9, 0, 10, 4, 255}));
  const auto msg = error_of([&] { read_idx_file(path, 1, 5); });
  EXPECT_TRUE(contains(msg, path.string())) << msg;
  EXPECT_TRUE(contains(msg, "record 2 has label 10")) << msg;
  EXPECT_TRUE(contains(msg, "0..9")) << msg;
  EXPECT_TRUE(contains(msg, "2 record(s) out of range")) << msg;
}

TEST(IdxReader, MissingFileNamesBothNamesAndHowToGetIt) {
  TempDir dir;
  const auto base = dir.path() / "train-labels-idx1-ubyte";
  const auto msg = error_of([&] { read_idx_file(base, 1, 60000); });
  EXPECT_TRUE(contains(msg, base.string() + ".gz'")) << msg;
  EXPECT_TRUE(contains(msg, base.string() + "'")) << msg;
  EXPECT_TRUE(contains(msg, "apt-get install dataset-fashion-mnist")) << msg;
  EXPECT_TRUE(contains(msg, "data.root")) << msg;
}

// ---- dataset -----------------------------------------------------------------------------

TEST(FashionMnistDataset, PadsWithZerosAroundTheImage) {
  TempDir dir;
  const auto root = write_tiny_root(dir, 3, 2, true);
  FashionMnistDataset ds(root, 2, 3, 2);
  const auto d = ds.load();
  ASSERT_EQ(d.train_x.sizes(), (std::vector<int64_t>{3, 1, 32, 32}));
  ASSERT_EQ(d.test_x.sizes(), (std::vector<int64_t>{2, 1, 32, 32}));
  EXPECT_EQ(d.train_x.scalar_type(), torch::kUInt8);
  EXPECT_EQ(d.shape.channels, 1);
  EXPECT_EQ(d.shape.height, 32);
  EXPECT_EQ(d.shape.width, 32);
  EXPECT_EQ(d.shape.classes, 10);

  auto padded = [](const torch::Tensor& images) {
    auto out = torch::zeros({images.size(0), 1, 32, 32}, torch::kUInt8);
    out.select(1, 0).slice(1, 2, 30).slice(2, 2, 30).copy_(images);
    return out;
  };
  EXPECT_TRUE(torch::equal(d.train_x, padded(expected_images(3, 1))));
  EXPECT_TRUE(torch::equal(d.test_x, padded(expected_images(2, 2))));
  // Image 1's pixel (0, 0) is at (2, 2), (27, 27) at (29, 29); rows 0-1, columns 30-31 are 0.
  EXPECT_EQ(d.train_x[1][0][2][2].item<int64_t>(), pixel(1, 1, 0, 0));
  EXPECT_EQ(d.train_x[1][0][29][29].item<int64_t>(), pixel(1, 1, 27, 27));
  EXPECT_EQ(d.train_x.slice(2, 0, 2).sum().item<int64_t>(), 0);
  EXPECT_EQ(d.train_x.slice(3, 30, 32).sum().item<int64_t>(), 0);

  EXPECT_TRUE(torch::equal(d.train_y, labels_tensor(tiny_labels(3, true))));
  EXPECT_TRUE(torch::equal(d.test_y, labels_tensor(tiny_labels(2, false))));
  // Statistics of the padded training images (what the model is given).
  ASSERT_EQ(d.mean.size(), 1u);
  const double mean = d.train_x.to(torch::kDouble).mean().item<double>() / 255;
  EXPECT_NEAR(d.mean[0], mean, 1e-9);
  EXPECT_TRUE(contains(d.description, "fashion_mnist (" + root.string() + ")")) << d.description;
  EXPECT_TRUE(contains(d.description, "3 train / 2 test, 32x32 (padded 2)")) << d.description;
}

TEST(FashionMnistDataset, NoPaddingAndPlainFiles) {
  TempDir dir;
  const auto root = write_tiny_root(dir, 2, 1, false);
  FashionMnistDataset ds(root, 0, 2, 1);
  EXPECT_EQ(ds.shape().height, 28);
  const auto d = ds.load();
  EXPECT_TRUE(torch::equal(d.train_x, expected_images(2, 1).unsqueeze(1)));
  EXPECT_TRUE(torch::equal(d.test_x, expected_images(1, 2).unsqueeze(1)));
  EXPECT_TRUE(contains(d.description, "28x28")) << d.description;
  EXPECT_FALSE(contains(d.description, "padded")) << d.description;
}

TEST(FashionMnistDataset, ThreeChannelsRepeatTheGreyOne) {
  TempDir dir;
  const auto root = write_tiny_root(dir, 2, 2, true);
  FashionMnistDataset ds(root, 2, 2, 2, 3);
  EXPECT_EQ(ds.shape().channels, 3);
  const auto d = ds.load();
  ASSERT_EQ(d.train_x.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  const auto grey = FashionMnistDataset(root, 2, 2, 2, 1).load().train_x;
  for (int64_t c = 0; c < 3; ++c) EXPECT_TRUE(torch::equal(d.train_x.narrow(1, c, 1), grey)) << c;
  ASSERT_EQ(d.mean.size(), 3u);
  EXPECT_DOUBLE_EQ(d.mean[0], d.mean[2]);
  EXPECT_TRUE(contains(d.description, "3 channels")) << d.description;
}

TEST(FashionMnistDataset, SubsetsAreTheFirstImages) {
  TempDir dir;
  const auto root = write_tiny_root(dir, 5, 3, true);
  FashionMnistDataset ds(root, 2, 5, 3, 1, 2, 1);
  EXPECT_EQ(ds.train_size(), 2);
  EXPECT_EQ(ds.test_size(), 1);
  const auto d = ds.load();
  ASSERT_EQ(d.train_x.size(0), 2);
  ASSERT_EQ(d.test_x.size(0), 1);
  const auto all = FashionMnistDataset(root, 2, 5, 3).load();
  EXPECT_EQ(all.train_x.size(0), 5);
  EXPECT_TRUE(torch::equal(d.train_x, all.train_x.slice(0, 0, 2)));
  EXPECT_TRUE(torch::equal(d.test_x, all.test_x.slice(0, 0, 1)));
  EXPECT_TRUE(torch::equal(d.train_y, labels_tensor(tiny_labels(2, true))));
  EXPECT_TRUE(contains(d.description, "first 2 of 5 train / first 1 of 3 test")) << d.description;
  // The whole file is still checked: a bad label after the subset is an error.
  fs::remove(root / "train-labels-idx1-ubyte.gz");
  dir.write("fm/train-labels-idx1-ubyte", idx_labels({0, 1, 2, 3, 10}));
  EXPECT_TRUE(contains(error_of([&] { ds.load(); }), "record 4 has label 10"));

  // Sizes known without files; a subset larger than the files is an error naming the key.
  EXPECT_EQ(FashionMnistDataset(dir.path() / "none", 2, 5, 3, 1, 4).train_size(), 4);
  const auto msg = error_of([&] { FashionMnistDataset(root, 2, 5, 3, 1, 6); });
  EXPECT_TRUE(contains(msg, "train_size") && contains(msg, "6")) << msg;
  EXPECT_TRUE(
      contains(error_of([&] { FashionMnistDataset(root, 2, 5, 3, 1, 0, 4); }), "test_size"));
}

TEST(FashionMnistDataset, MissingDataSaysHowToGetIt) {
  TempDir dir;
  FashionMnistDataset ds(dir.path() / "nowhere", 2, 60000, 10000);
  auto msg = error_of([&] { ds.load(); });
  EXPECT_TRUE(contains(msg, (dir.path() / "nowhere").string())) << msg;
  EXPECT_TRUE(contains(msg, "apt-get install dataset-fashion-mnist")) << msg;
  EXPECT_TRUE(contains(msg, "data.root")) << msg;
  // The directory exists but one file is missing.
  const auto root = write_tiny_root(dir, 2, 2, true);
  fs::remove(root / "t10k-labels-idx1-ubyte.gz");
  msg = error_of([&] { FashionMnistDataset(root, 2, 2, 2).load(); });
  EXPECT_TRUE(contains(msg, "t10k-labels-idx1-ubyte.gz") && contains(msg, "apt-get install"))
      << msg;
}

TEST(FashionMnistDataset, ThroughTheConfig) {
  TempDir dir;
  const auto none = (dir.path() / "none").string();
  auto make = [&](const std::string& extra) {
    auto exp =
        testing::experiment_from(dir, "data: {name: fashion_mnist, root: " + none + extra + "}\n");
    return registry::datasets().get("fashion_mnist").make(exp.section("data"));
  };
  // Defaults: one channel, padded to 32x32, all 60000 images; no file is read for that.
  auto ds = make("");
  EXPECT_EQ(ds->train_size(), 60000);
  auto s = ds->shape();
  EXPECT_EQ(s.channels, 1);
  EXPECT_EQ(s.height, 32);
  EXPECT_EQ(s.width, 32);
  EXPECT_EQ(s.classes, 10);
  s = make(", pad: 0, channels: 3, train_size: 1000")->shape();
  EXPECT_EQ(s.channels, 3);
  EXPECT_EQ(s.height, 28);
  EXPECT_EQ(make(", train_size: 1000")->train_size(), 1000);

  auto msg = error_of([&] { make(", train_size: 60001"); });
  EXPECT_TRUE(contains(msg, "data.train_size") && contains(msg, "60000")) << msg;
  msg = error_of([&] { make(", test_size: 10001"); });
  EXPECT_TRUE(contains(msg, "data.test_size") && contains(msg, "10000")) << msg;
  EXPECT_TRUE(contains(error_of([&] { make(", channels: 2"); }), "data.channels"));
  EXPECT_THROW(make(", pad: -1"), ConfigError);
  EXPECT_THROW(make(", channels: 4"), ConfigError);

  // The default root is the Debian package's directory.
  auto exp = testing::experiment_from(dir, "data: {name: fashion_mnist}\n");
  EXPECT_EQ(exp.section("data").get_string("root"), kFashionMnistRoot);
}

TEST(FashionMnistDataset, RealDebianFiles) {
  std::error_code ec;
  if (!fs::is_directory(kFashionMnistRoot, ec))
    GTEST_SKIP() << kFashionMnistRoot << " missing (apt-get install dataset-fashion-mnist)";
  const auto d =
      FashionMnistDataset(kFashionMnistRoot, 2, kFashionMnistTrain, kFashionMnistTest).load();
  ASSERT_EQ(d.train_x.sizes(), (std::vector<int64_t>{60000, 1, 32, 32}));
  ASSERT_EQ(d.test_x.sizes(), (std::vector<int64_t>{10000, 1, 32, 32}));
  // Balanced classes, exactly.
  EXPECT_TRUE(
      torch::equal(torch::bincount(d.train_y, {}, 10), torch::full({10}, 6000, torch::kLong)));
  EXPECT_TRUE(
      torch::equal(torch::bincount(d.test_y, {}, 10), torch::full({10}, 1000, torch::kLong)));
  // The first labels of each file (a header read as data would shift them).
  EXPECT_TRUE(torch::equal(d.train_y.slice(0, 0, 4), torch::tensor({9, 0, 0, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(d.test_y.slice(0, 0, 4), torch::tensor({9, 2, 1, 1}, torch::kLong)));
  // Known mean pixel of the training images, ~0.286; padding is all zeros and dilutes it.
  const auto inner = d.train_x.slice(2, 2, 30).slice(3, 2, 30);
  const double mean = static_cast<double>(inner.sum().item<int64_t>()) / (inner.numel() * 255.0);
  EXPECT_GE(mean, 0.27);
  EXPECT_LE(mean, 0.30);
  EXPECT_EQ(d.train_x.sum().item<int64_t>(), inner.sum().item<int64_t>());
  EXPECT_NEAR(d.mean[0], mean * 28 * 28 / (32 * 32), 1e-9);
  EXPECT_TRUE(contains(d.description, "60000 train / 10000 test, 32x32 (padded 2)"))
      << d.description;
}

}  // namespace
}  // namespace normexp::data
