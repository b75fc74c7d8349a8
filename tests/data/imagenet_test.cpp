// ImageNet's path: JPEG decoding (colour, greyscale, CMYK, corrupt), the augmentations'
// resampling against LibTorch's antialiased bilinear, the random-resized crop's distribution,
// the threaded loader (same batches whatever the worker count or rank split, resumable
// epochs, corrupt files skipped), `data prepare imagenet` on generated official archives (tar
// of tars, a devkit whose meta.mat matio writes), its refusals, and training through the CLI
// on JPEGs of real Fashion-MNIST images.

#include <archive.h>
#include <archive_entry.h>
#include <matio.h>
#include <turbojpeg.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "config/test_support.h"
#include "core/error.h"
#include "core/png.h"
#include "data/fashion_mnist.h"
#include "data/image_folder.h"
#include "data/imagenet.h"
#include "data/imagenet_prepare.h"
#include "data/jpeg.h"
#include "data/jpeg_loader.h"
#include "support/cli.h"
#include "support/ml_support.h"

namespace normexp::data {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// A smooth picture with some texture, distinct per `seed`.
RgbImage picture(int w, int h, unsigned seed) {
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.5, 3.0);
  const double f[3] = {u(rng), u(rng), u(rng)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.pixels[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<unsigned char>(
            127.5 + 120 * std::sin(f[c] * 6.283 * x / w + c) * std::cos(f[(c + 1) % 3] * 3.1 * y / h));
  return img;
}

void write_file(const fs::path& p, const std::vector<unsigned char>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<unsigned char> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// (H, W, 3) uint8 -> (1, 3, H, W) float.
torch::Tensor as_tensor(const RgbImage& img) {
  return torch::from_blob(const_cast<unsigned char*>(img.pixels.data()),
                          {img.height, img.width, 3}, torch::kByte)
      .permute({2, 0, 1})
      .unsqueeze(0)
      .to(torch::kFloat);
}

TEST(Jpeg, DecodesColourGreyAndCmykAndRefusesCorruptData) {
  const RgbImage img = picture(96, 64, 1);
  const auto original = as_tensor(img);
  std::string error;
  RgbImage out;
  // Colour at quality 95: close to the original pixels.
  const auto color = encode_jpeg(img, 95);
  ASSERT_TRUE(decode_jpeg(color.data(), color.size(), 0, 0, out, error)) << error;
  ASSERT_EQ(out.width, 96);
  ASSERT_EQ(out.height, 64);
  EXPECT_LT((as_tensor(out) - original).abs().mean().item<double>(), 3.0);
  // CMYK (Adobe YCCK): decoded back to the RGB it was made from, not refused or garbled.
  const auto cmyk = encode_jpeg(img, 95, JpegKind::Cmyk);
  JpegInfo info;
  ASSERT_TRUE(read_jpeg_header(cmyk.data(), cmyk.size(), info));
  EXPECT_TRUE(info.cmyk);
  ASSERT_TRUE(decode_jpeg(cmyk.data(), cmyk.size(), 0, 0, out, error)) << error;
  EXPECT_LT((as_tensor(out) - original).abs().mean().item<double>(), 4.0);
  // Greyscale: three equal channels.
  const auto gray = encode_jpeg(img, 95, JpegKind::Gray);
  ASSERT_TRUE(decode_jpeg(gray.data(), gray.size(), 0, 0, out, error)) << error;
  const auto g = as_tensor(out);
  EXPECT_TRUE(torch::equal(g[0][0], g[0][1]) && torch::equal(g[0][0], g[0][2]));
  EXPECT_GT(g.std().item<double>(), 10.0);
  // Scaled decoding: the smallest DCT scale that keeps 40x30 is 1/2 of 96x64.
  ASSERT_TRUE(decode_jpeg(color.data(), color.size(), 40, 30, out, error));
  EXPECT_EQ(out.width, 48);
  EXPECT_EQ(out.height, 32);
  // Truncated: no end marker, and the decoder refuses rather than returning grey rows.
  std::vector<unsigned char> cut(color.begin(), color.begin() + color.size() / 2);
  EXPECT_TRUE(has_jpeg_end_marker(color.data(), color.size()));
  EXPECT_FALSE(has_jpeg_end_marker(cut.data(), cut.size()));
  EXPECT_FALSE(decode_jpeg(cut.data(), cut.size(), 0, 0, out, error));
  EXPECT_FALSE(error.empty());
  const std::string text = "not an image";
  EXPECT_FALSE(read_jpeg_header(reinterpret_cast<const unsigned char*>(text.data()), text.size(), info));
}

// The DCT-domain downscale keeps both sides of what the crop needs: on a tall image it is
// the height that decides (1/8 would keep the width, 8 of the asked 8, and lose the height).
TEST(Jpeg, ScaledDecodingKeepsBothSidesAtLeastAsLargeAsAsked) {
  std::string error;
  RgbImage out;
  const auto tall = encode_jpeg(picture(64, 256, 3), 90);
  ASSERT_TRUE(decode_jpeg(tall.data(), tall.size(), 8, 200, out, error)) << error;
  EXPECT_EQ(out.height, 224);  // 7/8: the smallest eighth with a height of at least 200
  EXPECT_EQ(out.width, 56);
  const auto wide = encode_jpeg(picture(256, 64, 4), 90);
  ASSERT_TRUE(decode_jpeg(wide.data(), wide.size(), 200, 8, out, error)) << error;
  EXPECT_EQ(out.width, 224);
  EXPECT_EQ(out.height, 56);
}

// A CMYK JPEG whose K is not 255 (the encoder above writes K = 255 only). Written with
// libjpeg-turbo directly: two flat 16-pixel-wide halves, K = 255 and K = 128, at quality 100.
// Decoded as Adobe's inverted CMYK: each channel times K / 255.
TEST(Jpeg, CmykDecodingMultipliesEachChannelByK) {
  constexpr int kW = 32, kH = 16;
  const unsigned char cmy[3] = {200, 100, 50};
  std::vector<unsigned char> pixels(static_cast<size_t>(kW) * kH * 4);
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < kW; ++x) {
      unsigned char* px = pixels.data() + (static_cast<size_t>(y) * kW + x) * 4;
      std::copy(cmy, cmy + 3, px);
      px[3] = x < kW / 2 ? 255 : 128;
    }
  std::unique_ptr<void, int (*)(tjhandle)> h(tjInitCompress(), tjDestroy);
  ASSERT_TRUE(h);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(h.get(), pixels.data(), kW, 0, kH, TJPF_CMYK, &buf, &size, TJSAMP_444,
                        100, 0),
            0)
      << tjGetErrorStr2(h.get());
  const std::vector<unsigned char> bytes(buf, buf + size);
  tjFree(buf);
  JpegInfo info;
  ASSERT_TRUE(read_jpeg_header(bytes.data(), bytes.size(), info));
  ASSERT_TRUE(info.cmyk);
  RgbImage out;
  std::string error;
  ASSERT_TRUE(decode_jpeg(bytes.data(), bytes.size(), 0, 0, out, error)) << error;
  ASSERT_EQ(out.width, kW);
  for (int x : {4, kW - 4}) {  // inside each flat half, away from the 8x8 blocks' seam
    const double k = x < kW / 2 ? 255 : 128;
    const unsigned char* px = out.pixels.data() + (static_cast<size_t>(kH / 2) * kW + x) * 3;
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(px[c], cmy[c] * k / 255, 3.0) << "x " << x << " channel " << c;
  }
}

// The resampler against LibTorch's antialiased bilinear (the PIL filter torchvision applies),
// on a whole image with different scales per axis, and on an offset box.
TEST(Jpeg, ResampleMatchesAntialiasedBilinear) {
  const RgbImage img = picture(64, 48, 2);
  const auto t = as_tensor(img);
  std::vector<unsigned char> dst(3 * 16 * 16);
  auto result = [&] {
    return torch::from_blob(dst.data(), {1, 3, 16, 16}, torch::kByte).to(torch::kFloat);
  };
  resample_box(img, 0, 0, 64, 48, 16, /*flip=*/false, dst.data());
  auto ref = at::_upsample_bilinear2d_aa(t, {16, 16}, /*align_corners=*/false);
  EXPECT_LE((result() - ref).abs().max().item<double>(), 1.5);
  // An offset box (the crop), mirrored.
  resample_box(img, 8, 4, 32, 32, 16, /*flip=*/true, dst.data());
  ref = at::_upsample_bilinear2d_aa(t.slice(2, 4, 36).slice(3, 8, 40), {16, 16}, false).flip({3});
  EXPECT_LE((result() - ref).abs().max().item<double>(), 1.5);
  // Upscaling (a small crop): plain bilinear.
  resample_box(img, 10, 10, 8, 8, 16, false, dst.data());
  ref = torch::nn::functional::interpolate(
      t.slice(2, 10, 18).slice(3, 10, 18),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{16, 16}).mode(torch::kBilinear).align_corners(false));
  // Borders differ (edge clamping vs. replication), the interior must agree.
  EXPECT_LE((result() - ref).slice(2, 2, 14).slice(3, 2, 14).abs().max().item<double>(), 1.5);
}

TEST(Jpeg, RandomResizedCropFollowsTorchvisionsDistribution) {
  JpegAugment a;
  double area = 0, flips = 0;
  const int n = 4000;
  for (int s = 0; s < n; ++s) {
    const CropBox b = draw_crop(500, 375, a, static_cast<uint64_t>(s));
    ASSERT_GE(b.x0, 0);
    ASSERT_GE(b.y0, 0);
    ASSERT_LE(b.x0 + b.w, 500);
    ASSERT_LE(b.y0 + b.h, 375);
    const double frac = b.w * b.h / (500.0 * 375.0), ratio = b.w / b.h;
    EXPECT_GE(frac, 0.08 * 0.97);
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.03);
    EXPECT_GE(ratio, 3.0 / 4.0 / 1.03);
    area += frac;
    flips += b.flip;
  }
  // Accepted draws are uniform in area but the large ones get rejected more often (they do
  // not fit at extreme ratios): the mean lies below (0.08 + 1) / 2.
  EXPECT_GT(area / n, 0.40);
  EXPECT_LT(area / n, 0.56);
  EXPECT_NEAR(flips / n, 0.5, 0.03);
  // Same seed, same box; another seed, another box.
  const CropBox b1 = draw_crop(500, 375, a, 7), b2 = draw_crop(500, 375, a, 7),
                b3 = draw_crop(500, 375, a, 8);
  EXPECT_EQ(b1.x0, b2.x0);
  EXPECT_EQ(b1.w, b2.w);
  EXPECT_FALSE(b1.x0 == b3.x0 && b1.w == b3.w);
  // Evaluation: the central square of side 224 * short / 256.
  a.train = false;
  const CropBox e = draw_crop(500, 375, a, 0);
  EXPECT_DOUBLE_EQ(e.w, 224.0 * 375 / 256);
  EXPECT_DOUBLE_EQ(e.x0, (500 - e.w) / 2);
  EXPECT_FALSE(e.flip);
}

// A class folder tree of small JPEGs (sizes vary), plus one truncated file in class c1.
std::shared_ptr<ImageFiles> make_folder(const fs::path& root, int classes, int per_class,
                                        bool with_corrupt) {
  for (int c = 0; c < classes; ++c)
    for (int i = 0; i < per_class; ++i)
      write_file(root / fmt::format("c{}", c) / fmt::format("img{}.JPEG", i),
                 encode_jpeg(picture(40 + 7 * i, 36 + 5 * c, c * 100 + i), 90));
  if (with_corrupt) {
    auto bytes = encode_jpeg(picture(50, 50, 999), 90);
    bytes.resize(bytes.size() / 3);
    write_file(root / "c1" / "broken.JPEG", bytes);
  }
  return std::make_shared<ImageFiles>(scan_image_folder(root));
}

std::pair<torch::Tensor, torch::Tensor> whole_epoch(BatchSource& loader) {
  std::vector<torch::Tensor> x, y;
  for (int64_t b = 0; b < loader.num_batches(); ++b) {
    auto [i, l] = loader.batch(b);
    x.push_back(i);
    y.push_back(l);
  }
  return {torch::cat(x), torch::cat(y)};
}

TEST(JpegLoader, BatchesDoNotDependOnWorkersOrRanksAndEpochsRestore) {
  TempDir dir;
  auto files = make_folder(dir.path(), 3, 5, /*with_corrupt=*/false);
  ASSERT_EQ(files->size(), 15);
  JpegLoaderOptions o;
  o.batch_size = 4;
  o.augment.size = 24;
  o.augment.resize = 28;
  auto epoch_with = [&](int workers, const torch::Tensor& order) {
    o.workers = workers;
    JpegLoader l(files, o);
    l.set_order(order);
    return whole_epoch(l);
  };
  o.workers = 1;
  JpegLoader one(files, o);
  torch::manual_seed(3);
  one.new_epoch();
  const torch::Tensor order = one.order().clone();
  ASSERT_EQ(order.numel(), 16);  // permutation + the epoch's augmentation seed
  const auto [x1, y1] = whole_epoch(one);
  ASSERT_EQ(x1.sizes(), (std::vector<int64_t>{15, 3, 24, 24}));
  const auto [x3, y3] = epoch_with(3, order);
  EXPECT_TRUE(torch::equal(x1, x3));
  EXPECT_TRUE(torch::equal(y1, y3));
  // Labels follow the permutation.
  const auto perm = order.slice(0, 0, 15);
  EXPECT_TRUE(torch::equal(y1, torch::tensor(files->labels).index_select(0, perm)));
  // Two ranks' parts of every batch make up the one-process batch.
  o.workers = 2;
  JpegLoader r0(files, o), r1(files, o);
  r0.shard(0, 2, false);
  r1.shard(1, 2, false);
  r0.set_order(order);
  r1.set_order(order);
  one.set_order(order);
  for (int64_t b = 0; b < one.num_batches(); ++b) {
    auto [xa, ya] = r0.batch(b);
    auto [xb, yb] = r1.batch(b);
    auto [x, y] = one.batch(b);
    EXPECT_TRUE(torch::equal(torch::cat({xa, xb}), x)) << "batch " << b;
    EXPECT_TRUE(torch::equal(torch::cat({ya, yb}), y));
  }
  // A new epoch draws other crops; random access (a resume at batch 2) gives batch 2.
  one.new_epoch();
  const auto [x_next, y_next] = whole_epoch(one);
  EXPECT_FALSE(torch::equal(x_next, x1));
  one.set_order(order);
  auto [b2, l2] = one.batch(2);
  EXPECT_TRUE(torch::equal(b2, x1.slice(0, 8, 12)));
  auto [b0, l0] = one.batch(0);
  EXPECT_TRUE(torch::equal(b0, x1.slice(0, 0, 4)));
}

// An image's crop and flip come from (epoch seed, position): one picture copied into every
// file still comes out as a different crop at each position. The epoch state's last entry
// is that seed: a state with the same permutation and another seed gives other crops of the
// same images, and the original state gives the original crops back.
TEST(JpegLoader, EachPositionDrawsItsOwnCropFromTheStatesSeed) {
  TempDir dir;
  const auto bytes = encode_jpeg(picture(48, 40, 7), 90);
  for (int i = 0; i < 8; ++i) write_file(dir.path() / "c0" / fmt::format("img{}.JPEG", i), bytes);
  auto files = std::make_shared<ImageFiles>(scan_image_folder(dir.path()));
  JpegLoaderOptions o;
  o.batch_size = 4;
  o.augment.size = 16;
  o.augment.resize = 20;
  o.workers = 2;
  JpegLoader loader(files, o);
  torch::manual_seed(5);
  loader.new_epoch();
  const torch::Tensor state = loader.order().clone();
  ASSERT_EQ(state.numel(), 9);
  const auto x = whole_epoch(loader).first;
  ASSERT_EQ(x.size(0), 8);
  int same = 0;
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = i + 1; j < 8; ++j) same += torch::equal(x[i], x[j]) ? 1 : 0;
  EXPECT_EQ(same, 0) << "positions of one epoch share a crop";
  torch::Tensor reseeded = state.clone();
  reseeded[8] += 1;
  loader.set_order(reseeded);
  const auto x2 = whole_epoch(loader).first;
  for (int64_t i = 0; i < 8; ++i)
    EXPECT_FALSE(torch::equal(x2[i], x[i])) << "position " << i << " ignores the epoch seed";
  loader.set_order(state);
  EXPECT_TRUE(torch::equal(whole_epoch(loader).first, x));
}

TEST(JpegLoader, EvaluationIsTheCentreCropAndCorruptFilesAreSkippedAndCounted) {
  TempDir dir;
  auto files = make_folder(dir.path(), 2, 3, /*with_corrupt=*/true);
  ASSERT_EQ(files->size(), 7);
  JpegLoaderOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  o.augment.train = false;
  o.augment.size = 24;
  o.augment.resize = 28;
  o.workers = 2;
  JpegLoader loader(files, o);
  loader.new_epoch();
  EXPECT_FALSE(loader.order().defined());
  const auto [x, y] = whole_epoch(loader);
  ASSERT_EQ(x.size(0), 6) << "the truncated file is left out";
  EXPECT_EQ(loader.skipped(), 1);
  // Each image is its file's centre crop, in file order (the broken file is c1's first).
  std::vector<unsigned char> one(3 * 24 * 24);
  int64_t k = 0;
  for (int64_t i = 0; i < files->size(); ++i) {
    std::string error;
    if (!load_augmented(files->paths[i], o.augment, 0, one.data(), error)) {
      EXPECT_TRUE(contains(files->paths[i], "broken")) << files->paths[i];
      continue;
    }
    EXPECT_TRUE(torch::equal(x[k], torch::from_blob(one.data(), {3, 24, 24}, torch::kByte)))
        << files->paths[i];
    EXPECT_EQ(y[k].item<int64_t>(), files->labels[i]);
    ++k;
  }
  EXPECT_EQ(k, 6);
}

// What the dataset hands the loader and the pipeline: the configured crop (image_size,
// resize, scale_min) and the channel statistics that torchvision's ImageNet recipes
// normalize with (He et al. 2016's ResNet-50 among them).
TEST(ImageNetDataset, HandsOnItsCropSettingsAndImageNetsStatistics) {
  TempDir dir;
  make_folder(dir.path() / "in" / "train", 3, 2, /*with_corrupt=*/false);
  make_folder(dir.path() / "in" / "val", 3, 1, /*with_corrupt=*/false);
  const auto exp = testing::experiment_from(
      dir, "data: {name: imagenet, root: " + (dir.path() / "in").string() +
               ", official_counts: false, image_size: 24, resize: 32, scale_min: 0.3}\n");
  const auto d = ImageNetDataset(exp.section("data")).load();
  ASSERT_TRUE(d.files);
  EXPECT_EQ(d.files->augment.size, 24);
  EXPECT_EQ(d.files->augment.resize, 32);
  EXPECT_DOUBLE_EQ(d.files->augment.scale_min, 0.3);
  EXPECT_EQ(d.files->train->size(), 6);
  EXPECT_EQ(d.files->test->size(), 3);
  EXPECT_EQ(d.shape.classes, 3);
  EXPECT_EQ(d.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(d.std, (std::vector<double>{0.229, 0.224, 0.225}));
}

TEST(ImageFolder, ListsClassesInOrderAndRefusesStrayFiles) {
  TempDir dir;
  make_folder(dir.path() / "train", 3, 2, false);
  const auto train = scan_image_folder(dir.path() / "train");
  EXPECT_EQ(train.classes, (std::vector<std::string>{"c0", "c1", "c2"}));
  EXPECT_EQ(train.labels, (std::vector<int64_t>{0, 0, 1, 1, 2, 2}));
  // A validation split labelled like the training split, even with a class missing.
  make_folder(dir.path() / "val", 3, 1, false);
  fs::remove_all(dir.path() / "val" / "c0");
  const auto val = scan_image_folder(dir.path() / "val", &train.classes);
  EXPECT_EQ(val.labels, (std::vector<int64_t>{1, 2}));
  dir.write("val/c9/x.JPEG", "x");
  std::string msg;
  try {
    scan_image_folder(dir.path() / "val", &train.classes);
  } catch (const RunError& e) {
    msg = e.what();
  }
  EXPECT_TRUE(contains(msg, "c9")) << msg;
  dir.write("train/c1/notes.txt", "x");
  msg.clear();
  try {
    scan_image_folder(dir.path() / "train");
  } catch (const RunError& e) {
    msg = e.what();
  }
  EXPECT_TRUE(contains(msg, "notes.txt")) << msg;
  EXPECT_EQ(spread_subset(train, 3).labels, (std::vector<int64_t>{0, 1, 2}));
}

// --- official archives --------------------------------------------------------------------

using Members = std::vector<std::pair<std::string, std::vector<unsigned char>>>;

std::vector<unsigned char> tar_bytes(const Members& members) {
  std::vector<unsigned char> buf(1 << 22);
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& [name, bytes] : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(bytes.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, bytes.data(), bytes.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  buf.resize(used);
  return buf;
}

// meta.mat as the devkit's: a `synsets` struct array with ILSVRC2012_ID, WNID, words and
// num_children; the leaves get ids 1..n, one inner node a larger id.
void write_meta(const fs::path& path, const std::vector<std::string>& wnids) {
  mat_t* mat = Mat_CreateVer(path.c_str(), nullptr, MAT_FT_MAT5);
  ASSERT_NE(mat, nullptr);
  const char* fields[] = {"ILSVRC2012_ID", "WNID", "words", "num_children"};
  size_t dims[2] = {wnids.size() + 1, 1};
  matvar_t* s = Mat_VarCreateStruct("synsets", 2, dims, fields, 4);
  auto number = [](double v) {
    size_t d[2] = {1, 1};
    return Mat_VarCreate(nullptr, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, d, &v, 0);
  };
  auto text = [](const std::string& t) {
    size_t d[2] = {1, t.size()};
    return Mat_VarCreate(nullptr, MAT_C_CHAR, MAT_T_UTF8, 2, d, const_cast<char*>(t.data()), 0);
  };
  for (size_t i = 0; i <= wnids.size(); ++i) {
    const bool inner = i == wnids.size();
    // The inner node first in the file's order would still sort out by id: put it last.
    Mat_VarSetStructFieldByName(s, "ILSVRC2012_ID", i, number(inner ? 1001.0 : i + 1.0));
    Mat_VarSetStructFieldByName(s, "WNID", i, text(inner ? "n99999999" : wnids[i]));
    Mat_VarSetStructFieldByName(s, "words", i, text(inner ? "entity" : "class " + wnids[i]));
    Mat_VarSetStructFieldByName(s, "num_children", i, number(inner ? 3.0 : 0.0));
  }
  Mat_VarWrite(mat, s, MAT_COMPRESSION_NONE);
  Mat_VarFree(s);
  Mat_Close(mat);
}

struct Release {
  fs::path train, val, devkit;
  std::vector<std::string> wnids{"n01440764", "n01443537", "n01484850"};
  int per_class = 3, val_count = 5;
  std::vector<int> val_labels{2, 1, 3, 3, 1};  // ILSVRC2012_IDs
};

// Writes a tiny release into `dir`: `inner_extra` goes into the second class's tar (a bad
// member), `outer_extra` into the training tar; class 1's image 2 is a PNG (as ImageNet's
// n02105855_2933.JPEG) and class 0's image 1 a CMYK JPEG.
Release write_release(const TempDir& dir, const Members& inner_extra = {},
                      const Members& outer_extra = {}) {
  Release r;
  Members outer;
  for (size_t c = 0; c < r.wnids.size(); ++c) {
    Members inner;
    for (int i = 0; i < r.per_class; ++i) {
      const RgbImage img = picture(60 + 10 * i, 50, static_cast<unsigned>(c * 10 + i));
      std::vector<unsigned char> bytes;
      if (c == 1 && i == 2) {
        const fs::path png = dir.path() / "tmp.png";
        write_png(png, img.pixels, img.width, img.height, 3);
        bytes = read_file(png);
      } else {
        bytes = encode_jpeg(img, 90, c == 0 && i == 1 ? JpegKind::Cmyk : JpegKind::Color);
      }
      inner.push_back({fmt::format("{}_{}.JPEG", r.wnids[c], i), bytes});
    }
    if (c == 1) inner.insert(inner.end(), inner_extra.begin(), inner_extra.end());
    outer.push_back({r.wnids[c] + ".tar", tar_bytes(inner)});
  }
  outer.insert(outer.end(), outer_extra.begin(), outer_extra.end());
  r.train = dir.path() / "ILSVRC2012_img_train.tar";
  write_file(r.train, tar_bytes(outer));
  Members val;
  for (int k = 1; k <= r.val_count; ++k)
    val.push_back({fmt::format("ILSVRC2012_val_{:08d}.JPEG", k),
                   encode_jpeg(picture(70, 60, 500 + k), 90)});
  r.val = dir.path() / "ILSVRC2012_img_val.tar";
  write_file(r.val, tar_bytes(val));
  const fs::path meta = dir.path() / "meta.mat";
  write_meta(meta, r.wnids);
  std::string truth;
  for (int id : r.val_labels) truth += std::to_string(id) + "\n";
  r.devkit = dir.path() / "ILSVRC2012_devkit_t12.tar";
  write_file(r.devkit,
             tar_bytes({{"ILSVRC2012_devkit_t12/data/meta.mat", read_file(meta)},
                        {"ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
                         std::vector<unsigned char>(truth.begin(), truth.end())}}));
  return r;
}

ImageNetPrepareOptions options_for(const Release& r, const fs::path& root) {
  ImageNetPrepareOptions o;
  o.train_tar = r.train;
  o.val_tar = r.val;
  o.devkit = r.devkit;
  o.root = root;
  o.train_count = static_cast<int64_t>(r.wnids.size()) * r.per_class;
  o.val_count = r.val_count;
  o.classes = static_cast<int64_t>(r.wnids.size());
  return o;
}

TEST(ImageNetPrepare, OfficialArchivesBecomeTheClassFolderLayout) {
  TempDir dir;
  const Release r = write_release(dir);
  const auto classes = read_imagenet_meta(dir.path() / "meta.mat", 3);
  ASSERT_EQ(classes.size(), 3u);
  EXPECT_EQ(classes[2].wnid, "n01484850");
  EXPECT_EQ(classes[2].words, "class n01484850");

  const auto result = prepare_imagenet(options_for(r, dir.path() / "data"));
  EXPECT_EQ(result.train, 9);
  EXPECT_EQ(result.val, 5);
  EXPECT_EQ(result.converted, 1);
  const fs::path out = dir.path() / "data" / "imagenet";
  EXPECT_EQ(result.dir, out);
  EXPECT_FALSE(fs::exists(dir.path() / "data" / ".imagenet.partial"));
  // Validation images sorted into their ground-truth classes (ids 2, 1, 3, 3, 1).
  EXPECT_TRUE(fs::exists(out / "val" / "n01443537" / "ILSVRC2012_val_00000001.JPEG"));
  EXPECT_TRUE(fs::exists(out / "val" / "n01440764" / "ILSVRC2012_val_00000002.JPEG"));
  EXPECT_TRUE(fs::exists(out / "val" / "n01484850" / "ILSVRC2012_val_00000004.JPEG"));
  // The PNG is now a JPEG; the CMYK JPEG kept as it is.
  const auto png_now = read_file(out / "train" / "n01443537" / "n01443537_2.JPEG");
  JpegInfo info;
  EXPECT_TRUE(read_jpeg_header(png_now.data(), png_now.size(), info));
  const auto cmyk = read_file(out / "train" / "n01440764" / "n01440764_1.JPEG");
  ASSERT_TRUE(read_jpeg_header(cmyk.data(), cmyk.size(), info));
  EXPECT_TRUE(info.cmyk);
  // The loader reads it: 9 + 5 images, labels by wnid.
  const auto train = scan_image_folder(out / "train");
  EXPECT_EQ(train.classes, r.wnids);
  EXPECT_EQ(train.size(), 9);
  const auto val = scan_image_folder(out / "val", &train.classes);
  EXPECT_EQ(val.labels, (std::vector<int64_t>{0, 0, 1, 2, 2}));
  // The dataset over it says before loading what load() gives (`bench` builds its pipeline
  // from that: streamed files are cropped by the loader, not on the device).
  const auto exp = testing::experiment_from(
      dir, "data: {name: imagenet, root: " + out.string() + ", official_counts: false}\n");
  const ImageNetDataset ds(exp.section("data"));
  EXPECT_EQ(ds.modality(), Modality::Files);
  EXPECT_EQ(ds.load().modality, ds.modality());
  // Once there, it is not overwritten.
  EXPECT_THROW(prepare_imagenet(options_for(r, dir.path() / "data")), RunError);
}

TEST(ImageNetPrepare, AnInterruptedRunResumesFromItsFinishedClasses) {
  TempDir dir;
  const Release r = write_release(dir);
  const auto first = prepare_imagenet(options_for(r, dir.path() / "a"));
  // What an interruption during class 2 leaves: class 1 complete, class 2 half-written.
  const fs::path staging = dir.path() / "b" / ".imagenet.partial" / "train";
  fs::create_directories(staging);
  fs::copy(first.dir / "train" / "n01440764", staging / "n01440764");
  fs::create_directories(staging / "n01443537.part");
  write_file(staging / "n01443537.part" / "half.JPEG", {0xFF, 0xD8});
  const auto again = prepare_imagenet(options_for(r, dir.path() / "b"));
  EXPECT_EQ(again.resumed_classes, 1);
  EXPECT_EQ(again.train, 9);
  EXPECT_FALSE(fs::exists(again.dir / "train" / "n01443537" / "half.JPEG"));
  for (const auto& e : fs::recursive_directory_iterator(first.dir)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), first.dir);
    EXPECT_EQ(read_file(e.path()), read_file(again.dir / rel)) << rel;
  }
}

// Each bad release: the message names the problem and the member, and nothing is left.
TEST(ImageNetPrepare, BadArchivesAreRefusedAndLeaveNothing) {
  struct Case {
    const char* what;
    Members inner, outer;
    int64_t train_count_delta;
    std::vector<std::string> message;
  };
  auto truncated = encode_jpeg(picture(80, 80, 5), 90);
  truncated.resize(truncated.size() / 2);
  const std::string txt = "hello";
  const std::vector<Case> cases = {
      {"truncated JPEG", {{"n01443537_9.JPEG", truncated}}, {}, 1,
       {"n01443537.tar:n01443537_9.JPEG", "truncated"}},
      {"non-JPEG file", {{"n01443537_9.JPEG", {txt.begin(), txt.end()}}}, {}, 1,
       {"n01443537_9.JPEG", "not a JPEG"}},
      {"unsafe path", {{"../../evil.JPEG", encode_jpeg(picture(8, 8, 1), 90)}}, {}, 1,
       {"../../evil.JPEG", "not a plain file name"}},
      {"unknown class", {}, {{"n00000000.tar", tar_bytes({})}}, 0, {"n00000000.tar", "wnid"}},
      {"wrong count", {}, {}, 1, {"9 training images", "ILSVRC 2012 has 10"}},
  };
  for (const auto& c : cases) {
    TempDir dir;
    const Release r = write_release(dir, c.inner, c.outer);
    auto o = options_for(r, dir.path() / "data");
    o.train_count += c.train_count_delta;
    std::string msg;
    try {
      prepare_imagenet(o);
    } catch (const RunError& e) {
      msg = e.what();
    }
    for (const auto& m : c.message) EXPECT_TRUE(contains(msg, m)) << c.what << ": " << msg;
    EXPECT_FALSE(fs::exists(dir.path() / "data" / "imagenet")) << c.what;
    EXPECT_FALSE(fs::exists(dir.path() / "data" / ".imagenet.partial")) << c.what;
    EXPECT_FALSE(fs::exists(dir.path() / "evil.JPEG")) << c.what;
  }
  // A devkit without meta.mat, through the CLI: exit 1, the file named.
  TempDir dir;
  const Release r = write_release(dir);
  const std::string truth = "1\n";
  write_file(dir.path() / "devkit.tar",
             tar_bytes({{"x/data/ILSVRC2012_validation_ground_truth.txt", {truth.begin(), truth.end()}}}));
  const auto res = testing::normexp(fmt::format(
      "data prepare imagenet --train {} --val {} --devkit {} --root {}", r.train.string(),
      r.val.string(), (dir.path() / "devkit.tar").string(), (dir.path() / "data").string()));
  EXPECT_NE(res.code, 0);
  EXPECT_TRUE(contains(res.out, "devkit.tar") && contains(res.out, "data/meta.mat")) << res.out;
}

// Learning through the whole path on real data: Fashion-MNIST images written as JPEGs in class
// folders, trained by `normexp run` with data.name imagenet (random-resized crops from the
// loader's threads); the test accuracy must rise far above chance (10 %).
TEST(ImageNetPath, LearnsFashionMnistFromJpegFolders) {
  std::error_code ec;
  if (!fs::is_directory(kFashionMnistRoot, ec))
    GTEST_SKIP() << kFashionMnistRoot << " missing (apt-get install dataset-fashion-mnist)";
  TempDir dir;
  const auto d = FashionMnistDataset(kFashionMnistRoot, 0, kFashionMnistTrain, kFashionMnistTest, 1, 3000, 500).load();
  auto dump = [&](const torch::Tensor& x, const torch::Tensor& y, const std::string& split) {
    for (int64_t i = 0; i < x.size(0); ++i) {
      RgbImage img;
      img.width = img.height = 28;
      const auto g = x[i][0].contiguous();
      const uint8_t* p = g.data_ptr<uint8_t>();
      for (int k = 0; k < 28 * 28; ++k) img.pixels.insert(img.pixels.end(), {p[k], p[k], p[k]});
      write_file(dir.path() / "fm" / split / fmt::format("c{}", y[i].item<int64_t>()) /
                     fmt::format("{:05d}.JPEG", i),
                 encode_jpeg(img, 95));
    }
  };
  dump(d.train_x, d.train_y, "train");
  dump(d.test_x, d.test_y, "val");
  const fs::path cfg = dir.write(
      "fm.yaml",
      "name: fm_jpeg\n"
      "data: {name: imagenet, root: " + (dir.path() / "fm").string() +
          ", official_counts: false, image_size: 28, resize: 28, scale_min: 0.6, workers: 2}\n"
          "model: {name: cnn9, width: 0.25}\n"
          "norm: {name: bn}\n"
          "optim: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 5.0e-4}\n"
          "schedule: {name: cosine}\n"
          "train: {epochs: 2, batch_size: 64, eval_batch_size: 250, device: cpu}\n");
  const auto res = testing::normexp(fmt::format("run {} --output {} --progress none", cfg.string(),
                                                (dir.path() / "results").string()));
  ASSERT_EQ(res.code, 0) << res.out;
  fs::path metrics;
  for (const auto& e : fs::recursive_directory_iterator(dir.path() / "results"))
    if (e.path().filename() == "metrics.json") metrics = e.path();
  ASSERT_FALSE(metrics.empty()) << res.out;
  const auto m = nlohmann::json::parse(std::ifstream(metrics));
  const double acc = m["final"]["test_acc"].get<double>();
  EXPECT_GT(acc, 60.0) << m.dump(2);
  EXPECT_GT(m["final"]["test_top5_acc"].get<double>(), acc);
}

}  // namespace
}  // namespace normexp::data
