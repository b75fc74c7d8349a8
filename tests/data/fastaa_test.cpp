// Fast AutoAugment + Cutout (Ikami et al. 2021's "FastAA", lib/data/fastaa.h): each op on hand-made
// images against values worked out from the reference semantics in
// configs/augment/fastaa_cifar10_policy.json ("notes": PIL's behaviour), the magnitude mapping,
// the random draws (statistically, with tolerances of about 6 standard deviations and fixed
// seeds), the batched policy against the ops applied one image at a time, the pipeline order,
// the configs of Tables 1-2, the PNG writer and `normexp data preview|bench`.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "config/test_support.h"
#include "core/fs.h"
#include "core/png.h"
#include "data/aug_direct.h"
#include "data/fastaa.h"
#include "registry/builtin.h"
#include "support/cli.h"
#include "support/ml_support.h"
#include "compose/components.h"
#include "compose/run.h"
#include "train/augment_tools.h"
#include "train/pipeline.h"

namespace normexp {
namespace {

using data::AugOp;
using data::FastAutoAugment;
using testing::direct;
namespace aug = data::aug;

// uint8 (1, C, H, W) from rows of values per channel.
at::Tensor image(const std::vector<std::vector<std::vector<int>>>& channels) {
  const int64_t c = channels.size(), h = channels[0].size(), w = channels[0][0].size();
  auto t = torch::zeros({1, c, h, w}, torch::kUInt8);
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) t[0][k][y][x] = channels[k][y][x];
  return t;
}
at::Tensor rows(const std::vector<std::vector<int>>& r) {
  return image({r});
}
at::Tensor vec(std::vector<double> v) {
  return torch::tensor(v, torch::kDouble);
}
at::Tensor scalar(double v) {
  return vec({v});
}
// A single-row image (1, 1, 1, W) from values.
at::Tensor line(const std::vector<int>& v) {
  return rows({v});
}
std::vector<int> values(const at::Tensor& t) {
  auto flat = t.flatten().to(torch::kLong).contiguous();
  return {flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel()};
}

// The built-in ranges with these sub-policies.
FastAutoAugment policy_of(std::vector<std::vector<data::PolicyStep>> subs) {
  auto p = data::builtin_policy("fastaa_cifar10");
  p.sub_policies = std::move(subs);
  return FastAutoAugment(std::move(p));
}

// Outcome frequencies over the images of a batch whose pixels each end as one value.
std::map<int, double> frequencies(const at::Tensor& out) {
  std::map<int, double> f;
  const auto v = values(out);
  for (int x : v) f[x] += 1.0 / v.size();
  return f;
}
// |observed - p| within 6 standard deviations of a binomial proportion over n draws: a
// correct implementation passes (fixed seeds make it deterministic), a wrong one does not.
void expect_proportion(double observed, double p, int64_t n, const std::string& what) {
  const double sd = std::sqrt(p * (1 - p) / n);
  EXPECT_NEAR(observed, p, 6 * sd) << what;
}

// --- the policy as data ---

TEST(FastAAPolicy, BuiltInIsThePublishedCifarPolicy) {
  const auto p = data::builtin_policy("fastaa_cifar10");
  ASSERT_EQ(p.sub_policies.size(), 493u);  // the JSON: 493 sub-policies of two ops
  for (const auto& sub : p.sub_policies) EXPECT_EQ(sub.size(), 2u);
  EXPECT_EQ(p.sub_policies[0][0].op, AugOp::Contrast);
  EXPECT_NEAR(p.sub_policies[0][0].prob, 0.8320659688593578, 1e-15);
  EXPECT_EQ(p.sub_policies[0][1].op, AugOp::TranslateX);
  // The shipped file and the embedded copy are the same policy.
  const auto file = data::load_policy(std::string(NORMEXP_SOURCE_DIR) +
                                      "/configs/augment/fastaa_cifar10_policy.json");
  ASSERT_EQ(file.sub_policies.size(), p.sub_policies.size());
  EXPECT_EQ(file.sub_policies[492][1].level, p.sub_policies[492][1].level);
}

TEST(FastAAPolicy, MagnitudeIsLevelTimesRangePlusLow) {
  const auto p = data::builtin_policy("fastaa_cifar10");
  EXPECT_DOUBLE_EQ(p.magnitude(AugOp::Rotate, 0.25), -15.0);    // [-30, 30]
  EXPECT_DOUBLE_EQ(p.magnitude(AugOp::Posterize, 0.5), 6.0);    // [4, 8]
  EXPECT_DOUBLE_EQ(p.magnitude(AugOp::TranslateX, 1.0), 0.45);  // [-0.45, 0.45]
  EXPECT_DOUBLE_EQ(p.magnitude(AugOp::Solarize, 0.5), 128.0);   // [0, 256]
  EXPECT_DOUBLE_EQ(p.magnitude(AugOp::Sharpness, 0.0), 0.1);    // [0.1, 1.9]
  EXPECT_DOUBLE_EQ(p.magnitude(AugOp::Cutout, 1.0), 0.2);       // [0, 0.2]
}

TEST(FastAAPolicy, BadPoliciesAreRejectedWithTheReason) {
  auto msg = [](const std::string& json) {
    try {
      data::parse_policy(json, "t.json");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string ranges = R"("op_ranges": {"Invert": [0, 1]})";
  EXPECT_NE(msg("{").find("t.json: not valid JSON"), std::string::npos);
  EXPECT_NE(msg("{" + ranges + R"(, "policy": [[["Blur", 0.5, 0.5]]]})").find("unknown op 'Blur'"),
            std::string::npos);
  EXPECT_NE(msg("{" + ranges + R"(, "policy": [[["Invert", 1.5, 0.5]]]})").find("probability"),
            std::string::npos);
  EXPECT_NE(
      msg("{" + ranges + R"(, "policy": [[["Rotate", 0.5, 0.5]]]})").find("no entry in op_ranges"),
      std::string::npos);
  EXPECT_EQ(msg("{" + ranges + R"(, "policy": [[["Invert", 0.5, 0.5]]]})"), "accepted");
  EXPECT_THROW(data::load_policy("no_such_policy"), std::invalid_argument);
}

// --- the ops, on hand-made images ---

TEST(FastAAOps, EqualizeOfKnownHistograms) {
  // 128 zeros, 127 ones, 5 nines (260 pixels): step = (260 - 5) // 255 = 1, n starts at
  // step // 2 = 0: lut[0] = 0, lut[1] = 128, lut[9] = 255.
  std::vector<int> a(128, 0);
  a.insert(a.end(), 127, 1);
  a.insert(a.end(), 5, 9);
  EXPECT_EQ(values(aug::equalize(line(a))), values(line([&] {
              std::vector<int> e(128, 0);
              e.insert(e.end(), 127, 128);
              e.insert(e.end(), 5, 255);
              return e;
            }())));
  // 200 zeros, 312 ones, 5 nines: step = 512 // 255 = 2, n starts at 1: lut[1] = 201 // 2 =
  // 100, lut[9] = 513 // 2 = 256 -> 255.
  std::vector<int> b(200, 0);
  b.insert(b.end(), 312, 1);
  b.insert(b.end(), 5, 9);
  const auto eb = values(aug::equalize(line(b)));
  EXPECT_EQ(eb[0], 0);
  EXPECT_EQ(eb[200], 100);
  EXPECT_EQ(eb[516], 255);
  // step = (60 - 30) // 255 = 0 and a single value: both leave the image as it is.
  std::vector<int> c(10, 0);
  c.insert(c.end(), 20, 100);
  c.insert(c.end(), 30, 200);
  EXPECT_EQ(values(aug::equalize(line(c))), c);
  EXPECT_EQ(values(aug::equalize(line(std::vector<int>(40, 77)))), std::vector<int>(40, 77));
  // Per channel: the same three channels stacked give the three results.
  auto three =
      torch::cat({line(a), line(std::vector<int>(260, 77)), line(std::vector<int>(260, 3))}, 1);
  auto out = aug::equalize(three);
  EXPECT_EQ(values(out[0][0]), values(aug::equalize(line(a))));
  EXPECT_EQ(values(out[0][1]), std::vector<int>(260, 77));
}

TEST(FastAAOps, PosterizeKeepsTheTopBits) {
  auto x = line({191, 255, 3, 128});
  // int(4.7) = 4 bits: 0b10111111 -> 0b10110000.
  EXPECT_EQ(values(aug::posterize(x, scalar(4.7))), (std::vector<int>{176, 240, 0, 128}));
  EXPECT_EQ(values(aug::posterize(x, scalar(6.0))), (std::vector<int>{188, 252, 0, 128}));
  EXPECT_EQ(values(aug::posterize(x, scalar(8.0))), values(x));
  // Below one bit, Fast AutoAugment's max(1, int(v)): the top bit, not an image of zeros.
  EXPECT_EQ(values(aug::posterize(x, scalar(0.6))), (std::vector<int>{128, 128, 0, 128}));
}

TEST(FastAAOps, SolarizeInvertsAtOrAboveTheThreshold) {
  auto x = line({0, 127, 128, 200, 255});
  EXPECT_EQ(values(aug::solarize(x, scalar(128))), (std::vector<int>{0, 127, 127, 55, 0}));
  EXPECT_EQ(values(aug::solarize(x, scalar(256))), values(x));  // level 1: nothing
  EXPECT_EQ(values(aug::solarize(x, scalar(0))), (std::vector<int>{255, 128, 127, 55, 0}));
  EXPECT_EQ(values(aug::invert(x)), (std::vector<int>{255, 128, 127, 55, 0}));
}

TEST(FastAAOps, AutoContrastStretchesEachChannel) {
  // Channel 0, two levels: 50 -> 0, 150 -> 255. Channel 1 spans 1..10: scale = 255/9,
  // offset = -scale; 5 -> int(113.33) = 113 and, in PIL's double arithmetic, 10 -> int(10 *
  // 28.333333333333332 - 28.333333333333332) = int(254.99999999999997) = 254. Channel 2 is
  // constant: unchanged.
  auto x = image({{{50, 150, 50, 150}}, {{1, 5, 10, 1}}, {{9, 9, 9, 9}}});
  auto out = aug::auto_contrast(x);
  EXPECT_EQ(values(out[0][0]), (std::vector<int>{0, 255, 0, 255}));
  EXPECT_EQ(values(out[0][1]), (std::vector<int>{0, 113, 254, 0}));
  EXPECT_EQ(values(out[0][2]), (std::vector<int>{9, 9, 9, 9}));
}

TEST(FastAAOps, TranslateShiftsAOneHotImage) {
  // TranslateX at level 1 on a 200-pixel-wide image: 0.45 * 200 = 90 pixels. Output x takes
  // the input at floor(x + 0.5 + 90): the hot pixel at 120 lands at 30, and at -90 at 210
  // (outside: all black).
  std::vector<int> v(200, 0);
  v[120] = 255;
  auto x = line(v);
  auto left = values(aug::translate_x(x, scalar(90)));
  EXPECT_EQ(left[30], 255);
  EXPECT_EQ(std::count(left.begin(), left.end(), 255), 1);
  auto right = values(aug::translate_x(x, scalar(-90)));
  EXPECT_EQ(std::count(right.begin(), right.end(), 0), 200);
  // Fractional shifts round through floor(x + 0.5 + t): 1.4 -> 1, 1.5 -> 2, -1.5 -> -1.
  auto hot5 = line({0, 0, 0, 0, 0, 255, 0, 0});
  EXPECT_EQ(values(aug::translate_x(hot5, scalar(1.4)))[4], 255);
  EXPECT_EQ(values(aug::translate_x(hot5, scalar(1.5)))[3], 255);
  EXPECT_EQ(values(aug::translate_x(hot5, scalar(-1.5)))[6], 255);
  // TranslateY moves rows the same way (the transposed image).
  auto col = hot5.transpose(2, 3).contiguous();
  EXPECT_EQ(values(aug::translate_y(col, scalar(1.5))),
            values(aug::translate_x(hot5, scalar(1.5))));
}

TEST(FastAAOps, ShearAndRotateFollowPilsAffineMap) {
  // in[r][c] = 10 (4r + c) + 5. ShearX 0.3: output (x, y) takes input x' = floor(x + 0.5 +
  // 0.3 (y + 0.5)): rows 0, 1 unshifted (0.65, 0.95), rows 2, 3 shifted by one (1.25, 1.55).
  std::vector<std::vector<int>> in(4, std::vector<int>(4));
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) in[r][c] = 10 * (4 * r + c) + 5;
  auto x = rows(in);
  EXPECT_EQ(values(aug::shear_x(x, scalar(0.3))),
            (std::vector<int>{5, 15, 25, 35, 45, 55, 65, 75, 95, 105, 115, 0, 135, 145, 155, 0}));
  // ShearY is ShearX of the transposed image, transposed back.
  auto xt = x.transpose(2, 3).contiguous();
  EXPECT_EQ(values(aug::shear_y(xt, scalar(0.3)).transpose(2, 3)),
            values(aug::shear_x(x, scalar(0.3))));
  // Rotate 90 (counter-clockwise) about the centre (2, 2): out[y][x] = in[x][3 - y].
  std::vector<int> r90;
  for (int y = 0; y < 4; ++y)
    for (int c = 0; c < 4; ++c) r90.push_back(in[c][3 - y]);
  EXPECT_EQ(values(aug::rotate(x, scalar(90))), r90);
  EXPECT_EQ(values(aug::rotate(x, scalar(0))), values(x));
  // Rotate 30 of a 5x5 ramp (1..25), checked against PIL 13's Image.rotate(30).
  auto ramp = (torch::arange(25, torch::kUInt8) + 1).view({1, 1, 5, 5});
  EXPECT_EQ(values(aug::rotate(ramp, scalar(30))),
            (std::vector<int>{0,  3,  4,  10, 0,  2,  8,  9, 14, 15, 6,  12, 13,
                              19, 20, 11, 12, 18, 18, 24, 0, 16, 22, 23, 0}));
}

TEST(FastAAOps, SharpnessOfASingleBrightPixel) {
  // SMOOTH = [[1,1,1],[1,5,1],[1,1,1]]/13, rounded: centre 255*5/13 = 98.08 -> 98, its eight
  // neighbours 255/13 = 19.6 -> 20, the one-pixel border kept (0). Blend, truncated:
  // factor 0.1: 98 + 0.1 (255 - 98) = 113.7 -> 113, 20 + 0.1 (0 - 20) = 18;
  // factor 1.9: 396.3 -> 255, -18 -> 0.
  std::vector<std::vector<int>> in(5, std::vector<int>(5, 0));
  in[2][2] = 255;
  auto x = rows(in);
  const std::vector<int> soft{0,  0, 0, 0,  0,  0,  18, 18, 18, 0, 0, 18, 113,
                              18, 0, 0, 18, 18, 18, 0,  0,  0,  0, 0, 0};
  EXPECT_EQ(values(aug::sharpness(x, scalar(0.1))), soft);
  std::vector<int> sharp(25, 0);
  sharp[12] = 255;
  EXPECT_EQ(values(aug::sharpness(x, scalar(1.9))), sharp);
  EXPECT_EQ(values(aug::sharpness(x, scalar(1.0))), values(x));
  // A bright pixel on the border stays as it is in the smoothed image (factor 0 shows the
  // smoothed image itself); the interior pixels next to it get 255/13 -> 20.
  std::vector<std::vector<int>> edge(5, std::vector<int>(5, 0));
  edge[0][2] = 255;
  auto e = values(aug::sharpness(rows(edge), scalar(0.0)));
  EXPECT_EQ(e[2], 255);
  EXPECT_EQ(e[6], 20);
  EXPECT_EQ(e[7], 20);
  EXPECT_EQ(e[8], 20);
  EXPECT_EQ(e[12], 0);
}

TEST(FastAAOps, BrightnessColorContrastBlend) {
  // Brightness blends with black: 101 * 0.5 = 50.5 -> 50; 200 * 1.9 = 380 -> 255.
  EXPECT_EQ(values(aug::brightness(line({101, 200}), scalar(0.5))), (std::vector<int>{50, 100}));
  EXPECT_EQ(values(aug::brightness(line({101, 200}), scalar(1.9))), (std::vector<int>{191, 255}));
  // Colour (10, 200, 31): grey = (19595*10 + 38470*200 + 7471*31 + 32768) >> 16 = 124 (PIL's
  // fixed-point L = 0.299 R + 0.587 G + 0.114 B). Factor 0: grey; 0.5: 124 + 0.5 (v - 124).
  auto px = image({{{10}}, {{200}}, {{31}}});
  EXPECT_EQ(values(aug::grayscale(px)), (std::vector<int>{124}));
  EXPECT_EQ(values(aug::color(px, scalar(0.0))), (std::vector<int>{124, 124, 124}));
  EXPECT_EQ(values(aug::color(px, scalar(0.5))), (std::vector<int>{67, 162, 77}));
  // Contrast blends with the rounded mean grey: black and white pixels, mean 127.5 -> 128;
  // factor 0.5: 64 and 191.5 -> 191.
  auto bw = image({{{0, 255}}, {{0, 255}}, {{0, 255}}});
  EXPECT_EQ(values(aug::contrast(bw, scalar(0.5))), (std::vector<int>{64, 191, 64, 191, 64, 191}));
  EXPECT_EQ(values(aug::contrast(bw, scalar(1.0))), values(bw));
}

TEST(FastAAOps, CutoutSquaresAreClippedAtTheBorders) {
  // Pixel centres inside the square of side 4 centred at (4, 4): rows and columns 2..5.
  auto m = aug::square_mask(8, 8, scalar(4), scalar(4), scalar(4))[0][0];
  EXPECT_EQ(m.sum().item<int64_t>(), 16);
  EXPECT_TRUE(m.slice(0, 2, 6).slice(1, 2, 6).all().item<bool>());
  // Centred at the corner: a quarter of it is left.
  EXPECT_EQ(aug::square_mask(8, 8, scalar(0), scalar(0), scalar(4)).sum().item<int64_t>(), 4);
  // The policy's Cutout paints FastAA's grey (125, 123, 114) over about (v * width)^2 pixels.
  torch::manual_seed(3);
  auto x = torch::zeros({64, 3, 32, 32}, torch::kUInt8);
  auto out = aug::cutout(x, torch::full({64}, 0.2, torch::kDouble));  // side 6.4
  auto painted = out.ne(0).any(1);                                    // (N, H, W)
  for (int64_t i = 0; i < 64; ++i) {
    const auto area = painted[i].sum().item<int64_t>();
    EXPECT_LE(area, 49);
    EXPECT_GE(area, 1);
  }
  auto where = painted.unsqueeze(1).expand_as(out);
  auto colours = out.masked_select(where).view({3, -1});  // channel-major
  EXPECT_TRUE(out.select(1, 0).masked_select(painted).eq(125).all().item<bool>());
  EXPECT_TRUE(out.select(1, 1).masked_select(painted).eq(123).all().item<bool>());
  EXPECT_TRUE(out.select(1, 2).masked_select(painted).eq(114).all().item<bool>());
  (void)colours;
}

TEST(FastAAOps, DeVriesCutoutZeroesA16SquareAtAUniformCentre) {
  torch::manual_seed(7);
  const int64_t n = 4000;
  auto out = data::random_cutout(torch::ones({n, 3, 32, 32}), 16);
  auto zero = out.eq(0);
  EXPECT_TRUE(zero.all(1).eq(zero.any(1)).all().item<bool>());  // same square in every channel
  auto z = zero.select(1, 0);
  auto rows_hit = z.any(2), cols_hit = z.any(1);  // (N, H), (N, W)
  auto nr = rows_hit.sum(1), nc = cols_hit.sum(1);
  // A clipped 16-square: 8..16 rows and columns, every pixel of that rectangle zero.
  EXPECT_TRUE((nr >= 8).all().item<bool>() && (nr <= 16).all().item<bool>());
  EXPECT_TRUE(z.sum({1, 2}).eq(nr * nc).all().item<bool>());
  // Centre uniform over the 32 rows: P(full 16 rows) = P(8 <= cy <= 24) = 17/32.
  expect_proportion((nr == 16).to(torch::kDouble).mean().item<double>(), 17.0 / 32, n,
                    "unclipped rows");
  EXPECT_EQ(values(data::random_cutout(torch::ones({1, 1, 4, 4}), 0)), std::vector<int>(16, 1));
}

// --- the policy: selection, probabilities, mirroring, batching ---

TEST(FastAAPolicy, SubPoliciesAreDrawnUniformly) {
  // Five sub-policies, each Posterize with certainty at levels 0, .25, .5, .75, 1 (4..8
  // bits): a white pixel ends as 240, 248, 252, 254 or 255 and tells which one was drawn.
  std::vector<std::vector<data::PolicyStep>> subs;
  for (double level : {0.0, 0.25, 0.5, 0.75, 1.0}) subs.push_back({{AugOp::Posterize, 1.0, level}});
  auto fa = policy_of(subs);
  torch::manual_seed(11);
  const int64_t n = 20000;
  auto f = frequencies(fa(torch::full({n, 1, 1, 1}, 255, torch::kUInt8)));
  ASSERT_EQ(f.size(), 5u);
  for (int v : {240, 248, 252, 254, 255}) expect_proportion(f[v], 0.2, n, std::to_string(v));
}

TEST(FastAAPolicy, OpsFireWithTheirProbabilitiesInOrder) {
  // [Posterize 4 bits, p 0.3] then [Invert, p 0.8] on 100: 100 (neither, 0.14), 96 (posterize
  // only, 0.06), 155 (invert only, 0.56), 159 (both, in this order: 255 - 96; 0.24).
  auto fa = policy_of({{{AugOp::Posterize, 0.3, 0.0}, {AugOp::Invert, 0.8, 0.0}}});
  torch::manual_seed(12);
  const int64_t n = 20000;
  auto f = frequencies(fa(torch::full({n, 1, 1, 1}, 100, torch::kUInt8)));
  ASSERT_EQ(f.size(), 4u);
  expect_proportion(f[100], 0.14, n, "neither");
  expect_proportion(f[96], 0.06, n, "posterize only");
  expect_proportion(f[155], 0.56, n, "invert only");
  expect_proportion(f[159], 0.24, n, "both");
}

TEST(FastAAPolicy, GeometricMagnitudesAreMirroredHalfTheTime) {
  // TranslateX at level 0.75 on a 20-pixel row: 0.225 * 20 = 4.5 pixels, floor(x + 0.5 +-
  // 4.5): the hot pixel at 10 lands at 5 or at 14.
  auto fa = policy_of({{{AugOp::TranslateX, 1.0, 0.75}}});
  std::vector<int> v(20, 0);
  v[10] = 255;
  torch::manual_seed(13);
  const int64_t n = 20000;
  auto out = fa(line(v).expand({n, 1, 1, 20}).contiguous()).view({n, 20});
  auto at5 = out.select(1, 5).eq(255), at14 = out.select(1, 14).eq(255);
  EXPECT_TRUE((at5 ^ at14).all().item<bool>());
  expect_proportion(at5.to(torch::kDouble).mean().item<double>(), 0.5, n, "positive sign");
  // Non-geometric magnitudes are never mirrored: Solarize at 128 always.
  auto sol = policy_of({{{AugOp::Solarize, 1.0, 0.5}}});
  auto s = sol(torch::tensor({100, 200}, torch::kUInt8)
                   .view({1, 1, 1, 2})
                   .expand({n, 1, 1, 2})
                   .contiguous());
  EXPECT_TRUE(s.select(3, 0).eq(100).all().item<bool>());
  EXPECT_TRUE(s.select(3, 1).eq(55).all().item<bool>());
}

TEST(FastAAPolicy, BatchedPolicyEqualsTheOpsOneImageAtATime) {
  torch::manual_seed(21);
  const auto policy = data::builtin_policy("fastaa_cifar10");
  FastAutoAugment fa(policy);
  const int64_t n = 96, k = fa.steps();
  auto x = torch::randint(0, 256, {n, 3, 12, 12}, torch::kUInt8);
  // Low-contrast images too, so that AutoContrast and Equalize have something to do.
  x.slice(0, 0, n / 2).copy_(torch::randint(60, 90, {n / 2, 3, 12, 12}, torch::kUInt8));
  auto choice =
      torch::randint(0, static_cast<int64_t>(policy.sub_policies.size()), {n}, torch::kLong);
  auto fires = torch::rand({n, k}) < 0.7;
  auto sign = torch::where(torch::rand({n, k}) < 0.5, -1.0, 1.0).to(torch::kDouble);
  auto centre = torch::rand({n, k, 2}, torch::kDouble);
  auto batched = fa.apply(x, choice, fires, sign, centre);
  std::map<AugOp, int> seen;
  for (int64_t i = 0; i < n; ++i) {
    auto xi = x.slice(0, i, i + 1);
    const auto& sub = policy.sub_policies[choice[i].item<int64_t>()];
    for (int64_t s = 0; s < k; ++s) {
      if (!fires[i][s].item<bool>()) continue;
      const auto& step = sub[s];
      double m = policy.magnitude(step.op, step.level);
      if (step.op <= AugOp::Rotate) m *= sign[i][s].item<double>();
      ++seen[step.op];
      if (step.op == AugOp::Cutout) {
        auto mask =
            aug::square_mask(12, 12, centre[i][s][0] * 12, centre[i][s][1] * 12, scalar(m * 12));
        xi = torch::where(mask, torch::tensor({125, 123, 114}, torch::kUInt8).view({1, 3, 1, 1}),
                          xi);
      } else {
        xi = direct(step.op, xi, m);
      }
    }
    ASSERT_TRUE(torch::equal(batched.slice(0, i, i + 1), xi)) << "image " << i;
  }
  EXPECT_GE(seen.size(), 12u);  // most ops exercised
}

TEST(FastAAPolicy, EverySingleOpThroughThePolicyMatchesItsDirectForm) {
  torch::manual_seed(22);
  auto x = torch::randint(0, 256, {6, 3, 10, 10}, torch::kUInt8);
  for (int64_t o = 0; o < data::kNumAugOps - 1; ++o) {  // Cutout: covered above
    const auto op = static_cast<AugOp>(o);
    for (double level : {0.1, 0.77}) {
      auto fa = policy_of({{{op, 1.0, level}}});
      auto choice = torch::zeros({6}, torch::kLong);
      auto fires = torch::ones({6, 1}, torch::kBool);
      auto sign = torch::ones({6, 1}, torch::kDouble);
      auto centre = torch::zeros({6, 1, 2}, torch::kDouble);
      auto got = fa.apply(x, choice, fires, sign, centre);
      auto want = direct(op, x, fa.policy().magnitude(op, level));
      EXPECT_TRUE(torch::equal(got, want)) << data::aug_op_name(op) << " level " << level;
    }
  }
}

TEST(FastAAPolicy, KeepsDtypeShapeAndRangeAndIsReproducible) {
  FastAutoAugment fa(data::builtin_policy("fastaa_cifar10"));
  auto x = torch::randint(0, 256, {64, 3, 32, 32}, torch::kUInt8);
  torch::manual_seed(5);
  auto a = fa(x);
  torch::manual_seed(5);
  auto b = fa(x);
  torch::manual_seed(6);
  auto c = fa(x);
  EXPECT_EQ(a.scalar_type(), torch::kUInt8);
  EXPECT_EQ(a.sizes(), x.sizes());
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, x));
}

// --- the training pipeline ---

TEST(FastAAPipeline, OrderIsPolicyCropFlipNormalizeCutout) {
  testing::TempDir dir;
  auto exp = config::load_experiment(
      dir.write("e.yaml", "data: {name: synthetic, augment: fastaa, cutout: 16}\n"), {},
      registry::experiment_schema());
  auto p = train::pipeline_from_config(exp.section("data"));
  ASSERT_TRUE(p.policy);
  EXPECT_TRUE(p.augment);
  EXPECT_EQ(p.cutout, 16);
  p.mean = {0.5, 0.5, 0.5};
  p.std = {0.25, 0.25, 0.25};
  // Constant mid-grey images: the normalized value of 128 is 0.0078; crop padding gives
  // -2 (black); Cutout gives exactly 0 over a clipped 16-square.
  auto x = torch::full({32, 3, 32, 32}, 128, torch::kUInt8);
  torch::manual_seed(9);
  auto y = p.prepare(x, /*train=*/true);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  EXPECT_EQ(y.sizes(), x.sizes());
  auto zeros = y.eq(0).all(1).sum({1, 2});
  EXPECT_TRUE((zeros >= 64).all().item<bool>());  // at least an 8x8 corner in every image
  EXPECT_TRUE(torch::equal(p.prepare(x, /*train=*/false), p.prepare(x, false)));
  EXPECT_FALSE(p.prepare(x, false).eq(0).any().item<bool>());  // no augmentation at test time
  // The same seed gives the same batch through the whole pipeline.
  torch::manual_seed(9);
  EXPECT_TRUE(torch::equal(p.prepare(x, true), y));
  // A policy file that does not exist is a config error at data.policy.
  auto bad = config::load_experiment(
      dir.write("b.yaml", "data: {name: synthetic, augment: fastaa, policy: nope.json}\n"), {},
      registry::experiment_schema());
  try {
    train::pipeline_from_config(bad.section("data"));
    ADD_FAILURE() << "accepted a missing policy";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.issues()[0].path, "data.policy");
  }
}

TEST(FastAAConfigs, TablesOneAndTwoCells) {
  const std::filesystem::path dir = std::filesystem::path(NORMEXP_SOURCE_DIR) / "configs" / "ikami";
  auto load = [&](const std::string& rel) {
    return config::load_experiment(dir / rel, {}, registry::experiment_schema());
  };
  int n = 0;
  for (const char* ds : {"cifar10", "cifar100"})
    for (const char* arch : {"cnn9", "resnet110", "wrn28_10"})
      for (const char* norm : {"cwo", "bn", "gn", "ws_bn", "ws_gn"}) {
        const std::string cell = std::string(ds) + "_" + arch + "_" + norm + ".yaml";
        auto faa = load("table1_fastaa/" + cell);
        auto std_ = load("table1/" + cell);
        EXPECT_EQ(faa.section("data").get_string("augment"), "fastaa") << cell;
        EXPECT_EQ(faa.section("data").get_int("cutout"), 16) << cell;
        // Everything else is the standard cell's.
        auto strip = [](nlohmann::json j) {
          j.erase("name");
          j["data"].erase("augment");
          j["data"].erase("cutout");
          return j;
        };
        EXPECT_EQ(strip(faa.resolved()), strip(std_.resolved())) << cell;
        ++n;
      }
  EXPECT_EQ(n, 30);
  for (const char* ds : {"cifar10", "cifar100"})
    for (const char* norm : {"cwo", "bn"}) {
      const std::string base = std::string("table2/") + ds + "_wrn28_10_" + norm;
      auto b128 = load(base + "_b128.yaml");
      EXPECT_EQ(b128.hash(),
                load(std::string("table1_fastaa/") + ds + "_wrn28_10_" + norm + ".yaml").hash());
      for (int b : {4, 16}) {
        auto e = load(base + "_b" + std::to_string(b) + ".yaml");
        EXPECT_EQ(e.section("train").get_int("batch_size"), b);
        auto built = compose::build(e, c10::Device(c10::kCPU));
        EXPECT_DOUBLE_EQ(built.lr, e.section("optim").get_float("lr") * b / 128.0);
        EXPECT_EQ(e.section("data").get_string("augment"), "fastaa");
      }
    }
}

// --- PNG and the commands ---

// Reads the PNG back the long way: every chunk's CRC-32 and the inflated IDAT against the
// pixels (zlib as the reference decoder).
TEST(Png, ChunksCheckAndTheImageInflatesBackToThePixels) {
  for (int channels : {1, 3}) {
    SCOPED_TRACE(channels);
    const int w = 37, h = 23;
    std::vector<std::uint8_t> pixels(static_cast<size_t>(w) * h * channels);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 7 % 251);
    const std::string png = encode_png(pixels, w, h, channels);
    ASSERT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    auto u32 = [&](size_t at) {
      std::uint32_t v = 0;
      for (int k = 0; k < 4; ++k) v = v << 8 | static_cast<unsigned char>(png[at + k]);
      return v;
    };
    std::vector<std::string> types;
    std::string idat, ihdr;
    for (size_t at = 8; at < png.size();) {
      const std::uint32_t len = u32(at);
      const std::string body = png.substr(at + 4, 4 + len);
      EXPECT_EQ(u32(at + 8 + len),
                ::crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size()))
          << body.substr(0, 4);
      types.push_back(body.substr(0, 4));
      if (types.back() == "IDAT") idat += body.substr(4);
      if (types.back() == "IHDR") ihdr = body.substr(4);
      at += 12 + len;
    }
    EXPECT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
    ASSERT_EQ(ihdr.size(), 13u);
    EXPECT_EQ(ihdr[9], channels == 3 ? 2 : 0);  // colour type
    uLongf raw_size = static_cast<uLongf>((w * channels + 1) * h);
    std::string raw(raw_size, '\0');
    ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_size,
                         reinterpret_cast<const Bytef*>(idat.data()), idat.size()),
              Z_OK);
    ASSERT_EQ(raw_size, static_cast<uLongf>((w * channels + 1) * h));
    for (int y = 0; y < h; ++y) {
      EXPECT_EQ(raw[y * (w * channels + 1)], '\0');  // filter: none
      EXPECT_EQ(0, std::memcmp(raw.data() + y * (w * channels + 1) + 1,
                               pixels.data() + y * w * channels, w * channels))
          << "row " << y;
    }
    EXPECT_LT(png.size(), raw.size());  // deflate, not stored blocks
  }
  EXPECT_THROW(encode_png({1, 2}, 2, 3, 3), std::invalid_argument);
}

TEST(FastAACli, PreviewWritesAPngAndBenchPrintsTheRatio) {
  testing::TempDir dir;
  const auto cfg = std::string(NORMEXP_SOURCE_DIR) + "/configs/synthetic.yaml";
  const auto out = (dir.path() / "p.png").string();
  auto r = testing::normexp("data preview " + cfg +
                            " --set data.augment=fastaa --set data.cutout=8 --count 12 "
                            "--compare --out " +
                            out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("wrote"), std::string::npos);
  EXPECT_EQ(read_file(out).substr(1, 3), "PNG");
  r = testing::normexp("data bench " + cfg +
                       " --set data.augment=fastaa --set data.cutout=16 --set model.width=0.125 "
                       "--device cpu --batch 4 --iters 2 --steps 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| 4 |"), std::string::npos) << r.out;
  r = testing::normexp("data preview " + cfg +
                       " --set data.augment=fastaa --set data.policy=nope.json");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("data.policy"), std::string::npos) << r.out;
}

// data bench's times are per call whatever --iters and --steps: the same pipeline and step
// timed over 1 and over 16 calls give about the same milliseconds, where totals would grow
// 16-fold. A ratio within one process (the suite times nothing; this checks the division).
TEST(AugBench, TimesArePerCallWhateverTheNumberOfCalls) {
  testing::TempDir dir;
  const auto exp = testing::experiment_from(
      dir,
      "name: b\ndata: {name: synthetic, classes: 4, train_size: 64, test_size: 8, "
      "resolution: 32, augment: standard, cutout: 8}\nmodel: {name: cnn9, width: 0.125}\n"
      "train: {threads: 1}\n");
  const auto one = train::bench_augmentation(exp, compose::components(), {256}, 1, 1);
  const auto many = train::bench_augmentation(exp, compose::components(), {256}, 16, 16);
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(many.size(), 1u);
  EXPECT_GT(one[0].pipeline_ms, 0.0);
  EXPECT_LT(many[0].pipeline_ms, 4 * one[0].pipeline_ms)
      << one[0].pipeline_ms << " ms over 1 call, " << many[0].pipeline_ms << " over 16";
  EXPECT_LT(many[0].step_ms, 4 * one[0].step_ms)
      << one[0].step_ms << " ms over 1 call, " << many[0].step_ms << " over 16";
}

// `data preview` draws what training sees: (C, H, W) cells, row by row, each a training
// image scaled up pixel by pixel, between white 4-pixel lines. Catches a grid drawn column-
// major, a black background, an ignored --scale, a --compare cell without the original and
// Cutout painted black instead of in the mean colour (what zero means after normalization).
class Preview : public ::testing::Test {
 protected:
  config::Experiment experiment(const std::string& data) {
    return testing::experiment_from(
        dir_,
        "name: p\ndata: {name: synthetic, classes: 4, train_size: 64, test_size: 8, "
        "resolution: 8, " + data + "}\n");
  }
  // The training image a cell shows (index into train_x), or -1.
  static int64_t which(const at::Tensor& train_x, const at::Tensor& image) {
    auto same = (train_x == image.unsqueeze(0)).flatten(1).all(1).nonzero();
    return same.numel() > 0 ? same[0].item<int64_t>() : -1;
  }
  static at::Tensor chw(const train::PreviewImage& img) {
    return torch::from_blob(const_cast<std::uint8_t*>(img.pixels.data()),
                            {img.height, img.width, img.channels}, torch::kUInt8)
        .permute({2, 0, 1})
        .clone();
  }
  testing::TempDir dir_;
};

TEST_F(Preview, CellsAreTrainingImagesRowByRowScaledBetweenWhiteLines) {
  const auto exp = experiment("augment: none");
  const auto train_x = compose::components().dataset(exp.section("data"))->load().train_x;
  train::PreviewOptions o;
  o.count = 5;  // a grid of ceil(sqrt(5)) = 3 columns, 2 rows, one cell left empty
  o.scale = 2;
  const auto img = train::augmentation_preview(exp, compose::components(), o);
  ASSERT_EQ(img.channels, 3);
  const int64_t cell = 8 * 2, gap = 4;
  ASSERT_EQ(img.width, 3 * (cell + gap) + gap);
  ASSERT_EQ(img.height, 2 * (cell + gap) + gap);
  const auto canvas = chw(img);
  auto white = torch::ones_like(canvas, torch::kBool);
  std::set<int64_t> shown;
  for (int64_t i = 0; i < o.count; ++i) {
    const int64_t y = gap + (i / 3) * (cell + gap), x = gap + (i % 3) * (cell + gap);
    const auto c = canvas.slice(1, y, y + cell).slice(2, x, x + cell);
    white.slice(1, y, y + cell).slice(2, x, x + cell).fill_(false);
    const auto pixels = c.slice(1, 0, cell, 2).slice(2, 0, cell, 2);  // one per 2x2 block
    EXPECT_TRUE(torch::equal(c, pixels.repeat_interleave(2, 1).repeat_interleave(2, 2)))
        << "cell " << i << " is not drawn 2x2 per pixel";
    const int64_t k = which(train_x, pixels);
    EXPECT_GE(k, 0) << "cell " << i << " is no training image";
    shown.insert(k);
  }
  EXPECT_EQ(shown.size(), 5u);  // five different images
  EXPECT_TRUE(canvas.masked_select(white.expand_as(canvas)).eq(255).all().item<bool>())
      << "the lines and the empty sixth cell are not white";
}

TEST_F(Preview, CompareShowsTheOriginalAndCutoutInTheMeanColour) {
  const auto exp = experiment("augment: none, cutout: 4");
  const auto data = compose::components().dataset(exp.section("data"))->load();
  std::vector<int> mean255;
  for (double m : data.mean) mean255.push_back(static_cast<int>(std::lround(255.0 * m)));
  train::PreviewOptions o;
  o.count = 8;
  o.scale = 1;
  o.compare = true;
  const auto img = train::augmentation_preview(exp, compose::components(), o);
  const auto canvas = chw(img);
  // ceil(sqrt(8 / 2)) = 2 columns of cells 8 + 1 + 8 pixels wide: original | white | augmented.
  const int64_t cw = 8 + 1 + 8, gap = 4;
  ASSERT_EQ(img.width, 2 * (cw + gap) + gap);
  int64_t cut = 0;
  for (int64_t i = 0; i < o.count; ++i) {
    const int64_t y = gap + (i / 2) * (8 + gap), x = gap + (i % 2) * (cw + gap);
    const auto c = canvas.slice(1, y, y + 8).slice(2, x, x + cw);
    const auto original = c.slice(2, 0, 8), augmented = c.slice(2, 9, 17);
    ASSERT_GE(which(data.train_x, original), 0) << "cell " << i << ": no training image at left";
    EXPECT_TRUE(c.select(2, 8).eq(255).all().item<bool>()) << "cell " << i;
    for (int64_t ch = 0; ch < 3; ++ch) {
      const auto changed = augmented[ch].ne(original[ch]);
      cut += changed.sum().item<int64_t>();
      // Without a policy, crop or flip, only Cutout changes pixels, to the mean colour.
      EXPECT_TRUE(augmented[ch].masked_select(changed).eq(mean255[ch]).all().item<bool>())
          << "cell " << i << " channel " << ch << ": cut pixels are not the mean " << mean255[ch];
    }
  }
  EXPECT_GE(cut, 8 * 3 * 2);  // every image loses at least a corner's 2x2 square
}

// Optional cross-check against Pillow itself: tests/data/fastaa_pil_reference.py writes a
// JSON of random images with each op applied by PIL; point NORMEXP_PIL_REFERENCE at it.
TEST(FastAAOps, MatchPillowReferenceWhenGiven) {
  const char* path = std::getenv("NORMEXP_PIL_REFERENCE");
  if (path == nullptr) GTEST_SKIP() << "NORMEXP_PIL_REFERENCE not set";
  const auto j = nlohmann::json::parse(read_file(path));
  int checked = 0, mismatched = 0;
  for (const auto& c : j["cases"]) {
    const auto shape = c["shape"].get<std::vector<int64_t>>();  // C, H, W
    auto to_tensor = [&](const nlohmann::json& v) {
      return torch::tensor(v.get<std::vector<int64_t>>())
          .to(torch::kUInt8)
          .view({1, shape[0], shape[1], shape[2]});
    };
    const auto op = data::aug_op_from_name(c["op"].get<std::string>());
    auto got = direct(op, to_tensor(c["input"]), c["magnitude"].get<double>());
    const bool same = torch::equal(got, to_tensor(c["output"]));
    mismatched += !same;
    EXPECT_TRUE(same) << c["op"] << " magnitude " << c["magnitude"];
    ++checked;
  }
  EXPECT_GT(checked, 0);
  std::cout << checked << " Pillow cases, " << mismatched << " mismatched\n";
}

}  // namespace
}  // namespace normexp
