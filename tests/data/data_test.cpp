#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "data/augment.h"
#include "data/synthetic.h"
#include "support/ml_support.h"

namespace normexp::data {
namespace {

TEST(Crop, MatchesSlicingPerImage) {
  auto x = torch::randint(0, 255, {5, 3, 10, 12}, torch::kLong).to(torch::kUInt8);
  auto dy = torch::tensor({0, 1, 2, 3, 4}, torch::kLong);
  auto dx = torch::tensor({4, 3, 2, 1, 0}, torch::kLong);
  auto out = crop(x, 6, 8, dy, dx);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{5, 3, 6, 8}));
  for (int64_t n = 0; n < 5; ++n) {
    auto ref = x[n].slice(1, dy[n].item<int64_t>(), dy[n].item<int64_t>() + 6)
                   .slice(2, dx[n].item<int64_t>(), dx[n].item<int64_t>() + 8);
    EXPECT_TRUE(torch::equal(out[n], ref)) << n;
  }
}

TEST(RandomCrop, IsAShiftedCopyWithZeroPadding) {
  torch::manual_seed(0);
  auto x = torch::randint(1, 255, {64, 1, 6, 6}, torch::kLong).to(torch::kUInt8);
  auto out = random_crop(x, 2);
  ASSERT_EQ(out.sizes(), x.sizes());
  auto padded = torch::constant_pad_nd(x, {2, 2, 2, 2}, 0);
  std::set<std::pair<int, int>> offsets;
  std::set<int> rows, cols;
  for (int64_t n = 0; n < 64; ++n) {
    bool found = false;
    for (int dy = 0; dy <= 4 && !found; ++dy)
      for (int dx = 0; dx <= 4 && !found; ++dx)
        if (torch::equal(out[n], padded[n].slice(1, dy, dy + 6).slice(2, dx, dx + 6))) {
          found = true;
          offsets.insert({dy, dx});
          rows.insert(dy);
          cols.insert(dx);
        }
    EXPECT_TRUE(found) << "image " << n << " is not a crop of its padded original";
  }
  EXPECT_GT(offsets.size(), 10u);  // offsets vary across the batch
  // Every shift in [-pad, pad] on each axis, the last one too (an off-by-one in the draw's
  // upper bound would never shift by +pad); 64 draws of 5 values miss one with p ~ 1e-6.
  EXPECT_EQ(rows, (std::set<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(cols, (std::set<int>{0, 1, 2, 3, 4}));
}

TEST(RandomHflip, FlipsAboutHalf) {
  torch::manual_seed(1);
  auto x = torch::arange(4, torch::kLong).to(torch::kUInt8).view({1, 1, 1, 4}).repeat({1000, 1, 1, 1});
  auto out = random_hflip(x);
  auto flipped = out.select(3, 0).flatten().eq(3).sum().item<int64_t>();
  auto same = out.select(3, 0).flatten().eq(0).sum().item<int64_t>();
  EXPECT_EQ(flipped + same, 1000);
  EXPECT_NEAR(flipped, 500, 80);  // binomial sd ~16
}

// Random erasing: about `prob` of the images get one rectangle (the same in every channel) of
// N(0, 1) noise, covering 2%-33% of the image (less where clamped), the rest untouched.
// Catches a mask that is not a rectangle, differs between channels, ignores the probability,
// or fills with a constant.
TEST(RandomErasing, ErasesOneNoisyRectanglePerChosenImage) {
  torch::manual_seed(0);
  const int64_t n = 2000, h = 16, w = 20;
  const auto x = torch::full({n, 3, h, w}, 7.0f);  // a value noise never takes exactly
  const auto y = random_erasing(x, 0.25);
  const auto erased = y.ne(x);                        // (N, 3, H, W)
  EXPECT_TRUE(erased.equal(erased.narrow(1, 0, 1).expand_as(erased)));  // every channel alike
  const auto box = erased.select(1, 0);               // (N, H, W)
  const auto hit = box.flatten(1).any(1);
  EXPECT_NEAR(hit.to(torch::kDouble).mean().item<double>(), 0.25, 0.035);  // 3.6 SE
  const auto rows = box.any(2), cols = box.any(1);
  EXPECT_TRUE(box.equal(rows.unsqueeze(2).logical_and(cols.unsqueeze(1))));  // rectangles
  const auto share = box.flatten(1).to(torch::kDouble).mean(1).masked_select(hit);
  EXPECT_GE(share.min().item<double>(), 0.005);
  EXPECT_LE(share.max().item<double>(), 0.34 + 1.0 / h + 1.0 / w);  // area 1/3 plus rounding
  // The target area is uniform in [0.02, 1/3] of the image (Zhong et al. 2020; timm). The
  // share's mean for this 16x20 image, 0.176, and P(share > 0.28) = 0.18 come from a
  // simulation of that recipe in plain Python (4e5 boxes, rounding and clipping included);
  // ~500 boxes here, SE of the mean 0.004. An area range of [0.02, 0.1] gives 0.06.
  EXPECT_GT(share.max().item<double>(), 0.28);
  EXPECT_NEAR(share.mean().item<double>(), 0.176, 0.02);
  const auto noise = y.masked_select(erased).to(torch::kDouble);
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.02);
  EXPECT_NEAR(noise.std().item<double>(), 1.0, 0.02);
  EXPECT_TRUE(random_erasing(x, 0.0).equal(x));
}

TEST(Normalize, PerChannel) {
  auto x = torch::full({2, 2, 3, 3}, 51, torch::kUInt8);  // 0.2
  auto y = normalize(x, {0.2, 0.1}, {0.5, 0.25});
  EXPECT_NEAR(y[0][0][0][0].item<float>(), 0.0, 1e-6);
  EXPECT_NEAR(y[1][1][2][2].item<float>(), (0.2 - 0.1) / 0.25, 1e-5);
}

TEST(DeviceLoader, ShuffledEpochVisitsEveryImageOnce) {
  torch::manual_seed(2);
  auto x = torch::arange(103, torch::kLong).to(torch::kUInt8).view({103, 1, 1, 1});
  auto y = torch::arange(103, torch::kLong);
  DeviceLoader loader(x, y, 10, /*shuffle=*/true, /*drop_last=*/false);
  EXPECT_EQ(loader.num_batches(), 11);
  loader.new_epoch();
  std::vector<int64_t> seen;
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    auto [bx, by] = loader.batch(i);
    EXPECT_TRUE(torch::equal(bx.flatten().to(torch::kLong), by));  // images stay with labels
    for (int64_t k = 0; k < by.size(0); ++k) seen.push_back(by[k].item<int64_t>());
  }
  ASSERT_EQ(seen.size(), 103u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 103u);
  EXPECT_FALSE(std::is_sorted(seen.begin(), seen.end()));
  DeviceLoader dropping(x, y, 10, true, /*drop_last=*/true);
  EXPECT_EQ(dropping.num_batches(), 10);
}

// Repeated augmentation: 103 positions hold ceil(103 / 3) = 35 images, each three times in a
// row (the last one once: the epoch keeps its length), images still with their labels, and a
// new subset every epoch. Catches copies spread apart, a longer epoch, or repeats ignored.
TEST(DeviceLoader, RepeatedAugmentationVisitsAThirdOfTheImagesThreeTimesInARow) {
  torch::manual_seed(3);
  auto x = torch::arange(103, torch::kLong).to(torch::kUInt8).view({103, 1, 1, 1});
  auto y = torch::arange(103, torch::kLong);
  DeviceLoader loader(x, y, 10, /*shuffle=*/true, /*drop_last=*/false);
  loader.set_repeats(3);
  std::set<int64_t> first_epoch;
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.new_epoch();
    std::vector<int64_t> seen;
    for (int64_t i = 0; i < loader.num_batches(); ++i) {
      auto [bx, by] = loader.batch(i);
      EXPECT_TRUE(torch::equal(bx.flatten().to(torch::kLong), by));
      for (int64_t k = 0; k < by.size(0); ++k) seen.push_back(by[k].item<int64_t>());
    }
    ASSERT_EQ(seen.size(), 103u);
    for (size_t k = 0; k < seen.size(); ++k)
      EXPECT_EQ(seen[k], seen[k - k % 3]) << "position " << k;  // runs of three
    const std::set<int64_t> unique(seen.begin(), seen.end());
    EXPECT_EQ(unique.size(), 35u);
    if (epoch == 0) first_epoch = unique;
    else EXPECT_NE(unique, first_epoch);
  }
}

TEST(Synthetic, DeterministicBalancedAndSeedDependent) {
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml);
  SyntheticDataset a(exp.section("data"));
  auto d1 = a.load();
  auto d2 = a.load();
  EXPECT_TRUE(torch::equal(d1.train_x, d2.train_x));
  EXPECT_TRUE(torch::equal(d1.test_y, d2.test_y));
  EXPECT_EQ(d1.train_x.sizes(), (std::vector<int64_t>{256, 3, 8, 8}));
  EXPECT_EQ(d1.train_x.scalar_type(), torch::kUInt8);
  EXPECT_EQ(d1.test_x.size(0), 64);
  EXPECT_TRUE(torch::equal(torch::bincount(d1.train_y), torch::full({4}, 64, torch::kLong)));
  EXPECT_EQ(d1.mean.size(), 3u);
  auto other = testing::experiment_from(dir, testing::kTinyYaml, {"data.seed=5"});
  auto d3 = SyntheticDataset(other.section("data")).load();
  EXPECT_FALSE(torch::equal(d1.train_x, d3.train_x));
}

TEST(Synthetic, ClassesAreSeparableByNearestClassMean) {
  // "Learnable": even a nearest-class-mean rule on raw pixels beats chance by far.
  testing::TempDir dir;
  auto exp = testing::experiment_from(dir, testing::kTinyYaml);
  auto d = SyntheticDataset(exp.section("data")).load();
  auto xtr = d.train_x.flatten(1).to(torch::kFloat);
  auto means = torch::stack({xtr.index({d.train_y == 0}).mean(0), xtr.index({d.train_y == 1}).mean(0),
                             xtr.index({d.train_y == 2}).mean(0), xtr.index({d.train_y == 3}).mean(0)});
  auto xte = d.test_x.flatten(1).to(torch::kFloat);
  auto pred = torch::cdist(xte, means).argmin(1);
  const double acc = pred.eq(d.test_y).to(torch::kFloat).mean().item<double>();
  EXPECT_GT(acc, 0.5);  // chance is 0.25
}

// data.noise is the task's difficulty: the pixel noise around each class pattern. Within-class
// spread grows with it, and a nearest-class-mean rule fitted on the training set does worse
// on the test set.
TEST(Synthetic, NoiseSetsTheDifficulty) {
  testing::TempDir dir;
  auto stats = [&](const std::string& noise) {
    auto exp = testing::experiment_from(dir, testing::kTinyYaml, {"data.noise=" + noise});
    auto d = SyntheticDataset(exp.section("data")).load();
    auto xtr = d.train_x.flatten(1).to(torch::kFloat);
    std::vector<torch::Tensor> means;
    double spread = 0;
    for (int64_t k = 0; k < 4; ++k) {
      auto xk = xtr.index({d.train_y == k});
      means.push_back(xk.mean(0));
      spread += (xk - means.back()).pow(2).mean().item<double>() / 4;
    }
    auto pred = torch::cdist(d.test_x.flatten(1).to(torch::kFloat), torch::stack(means)).argmin(1);
    const double accuracy = pred.eq(d.test_y).to(torch::kFloat).mean().item<double>();
    return std::make_pair(std::sqrt(spread), accuracy);
  };
  const auto [clean_spread, clean_acc] = stats("0");
  const auto [noisy_spread, noisy_acc] = stats("3");
  EXPECT_GT(noisy_spread, 2 * clean_spread);
  EXPECT_GT(clean_acc, noisy_acc);
}

}  // namespace
}  // namespace normexp::data
