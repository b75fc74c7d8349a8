// RandAugment (data/randaugment.h): timm's magnitude maps, the batched pass against the ops
// applied one image at a time, the draws' statistics, and the config path.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "config/test_support.h"
#include "data/aug_direct.h"
#include "data/randaugment.h"
#include "registry/builtin.h"
#include "train/pipeline.h"

namespace normexp {
namespace {

using data::AugOp;
using data::RandAugment;

double magnitude_of(AugOp op, double level, double sign) {
  const auto ops = torch::full({1}, static_cast<int64_t>(op), torch::kLong);
  return RandAugment::magnitudes(ops, torch::full({1}, level, torch::kDouble),
                                 torch::full({1}, sign, torch::kDouble))
      .item<double>();
}

// timm's increasing maps (rand-...-inc1) at M = 9 and the ends of the scale. Catches a wrong
// range (e.g. FastAA's [0.1, 1.9] map, which never weakens an enhance op), posterize or
// solarize running the wrong way (stronger at lower levels), or a lost sign.
TEST(RandAugment, MagnitudesFollowTimmsIncreasingMaps) {
  EXPECT_NEAR(magnitude_of(AugOp::Rotate, 9, 1), 27.0, 1e-12);
  EXPECT_NEAR(magnitude_of(AugOp::ShearX, 9, -1), 0.27, 1e-12);  // unsigned: apply() signs it
  EXPECT_NEAR(magnitude_of(AugOp::TranslateY, 10, 1), 0.45, 1e-12);
  EXPECT_EQ(magnitude_of(AugOp::Posterize, 0, 1), 4.0);
  EXPECT_EQ(magnitude_of(AugOp::Posterize, 5, 1), 2.0);
  EXPECT_EQ(magnitude_of(AugOp::Posterize, 9, 1), 1.0);
  EXPECT_EQ(magnitude_of(AugOp::Solarize, 0, 1), 256.0);  // no pixel reaches 256: unchanged
  EXPECT_EQ(magnitude_of(AugOp::Solarize, 9, 1), 26.0);
  EXPECT_NEAR(magnitude_of(AugOp::Contrast, 9, 1), 1.81, 1e-12);
  EXPECT_NEAR(magnitude_of(AugOp::Brightness, 9, -1), 0.19, 1e-12);
  EXPECT_NEAR(magnitude_of(AugOp::Sharpness, 10, -1), 0.1, 1e-12);
  EXPECT_NEAR(magnitude_of(AugOp::Color, 0, -1), 1.0, 1e-12);  // level 0: no change
  EXPECT_EQ(data::randaugment_ops().size(), 14u);
}

// The batched pass equals the ops applied one image and one layer at a time through aug::
// (the functions the Pillow cross-check covers), for random draws of every op.
TEST(RandAugment, BatchedPassEqualsTheOpsOneImageAtATime) {
  torch::manual_seed(4);
  const int64_t n = 48, layers = 2;
  const auto images = torch::randint(0, 256, {n, 3, 12, 10}, torch::kUInt8);
  const auto choice = torch::randint(0, 14, {n, layers}, torch::kLong);
  const auto fires = torch::rand({n, layers}) < 0.7;
  const auto level = torch::rand({n, layers}, torch::kDouble) * 10;
  const auto sign = torch::where(torch::rand({n, layers}) < 0.5, -1.0, 1.0).to(torch::kDouble);
  RandAugment ra(data::RandAugmentOptions{});
  const auto got = ra.apply(images, choice, fires, level, sign);
  for (int64_t i = 0; i < n; ++i) {
    auto x = images.narrow(0, i, 1);
    for (int64_t l = 0; l < layers; ++l) {
      if (!fires[i][l].item<bool>()) continue;
      const AugOp op = data::randaugment_ops()[choice[i][l].item<int64_t>()];
      double m = magnitude_of(op, level[i][l].item<double>(), sign[i][l].item<double>());
      const bool geometric = op == AugOp::ShearX || op == AugOp::ShearY ||
                             op == AugOp::TranslateX || op == AugOp::TranslateY ||
                             op == AugOp::Rotate;
      if (geometric) m *= sign[i][l].item<double>();
      x = testing::direct(op, x, m);
    }
    EXPECT_TRUE(got.narrow(0, i, 1).equal(x)) << "image " << i;
  }
}

// The random draws: about prob x layers ops per image fire, every op of the list is drawn,
// and at M = 0 with no noise every magnitude-driven op is the identity (a check that the noise
// and the clipping go through the level, not the image).
TEST(RandAugment, DrawsFireAtTheirProbabilityAndLevelZeroIsGentle) {
  torch::manual_seed(5);
  const auto images = torch::randint(0, 256, {400, 3, 8, 8}, torch::kUInt8);
  data::RandAugmentOptions o;
  o.prob = 1.0;
  o.layers = 1;
  const auto out = RandAugment(o)(images);
  const double changed = out.ne(images).flatten(1).any(1).to(torch::kDouble).mean().item<double>();
  EXPECT_GT(changed, 0.75);  // ops at M = 9 change most images (some, e.g. Equalize, may not)
  o.prob = 0.0;
  EXPECT_TRUE(RandAugment(o)(images).equal(images));
  o.prob = 1.0;
  o.magnitude = 0;
  o.magnitude_std = 0;
  const auto gentle = RandAugment(o)(images);
  // Only the magnitude-free ops (AutoContrast, Equalize, Invert; 3 of 14) and Posterize at
  // level 0 (4 bits) change an image at M = 0.
  const double touched = gentle.ne(images).flatten(1).any(1).to(torch::kDouble).mean().item<double>();
  EXPECT_LT(touched, 4.0 / 14 + 0.1);
}

// data.augment: randaugment builds the policy from data.randaugment_*.
TEST(RandAugment, ComesFromTheDataSection) {
  testing::TempDir dir;
  const auto exp = config::load_experiment(
      dir.write("ra.yaml",
                "data: {name: synthetic, augment: randaugment, randaugment_n: 3, "
                "randaugment_p: 0.0}\n"),
      {}, registry::experiment_schema());
  const auto p = train::pipeline_from_config(exp.section("data"));
  ASSERT_TRUE(p.policy);
  const auto images = torch::randint(0, 256, {4, 3, 8, 8}, torch::kUInt8);
  EXPECT_TRUE((*p.policy)(images).equal(images));  // p = 0: nothing fires
  EXPECT_TRUE(dynamic_cast<const RandAugment*>(p.policy.get()) != nullptr);
}

}  // namespace
}  // namespace normexp
