// Akbar §8 Experiment 1's weight tracker (analysis/weights.h) on a tensor set by hand between
// records: the norms, the largest change relative to the first norm, and the tables that the
// plots read, first record included.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "analysis/weights.h"

namespace normexp {
namespace {

TEST(WeightTracker, NormsChangeAndTablesFollowTheRecords) {
  auto w = torch::tensor({3.0, 4.0}, torch::kDouble);
  analysis::WeightTracker tracker;
  tracker.add("w", w, /*trajectory=*/true);
  tracker.record(0);
  w.copy_(torch::tensor({6.0, 8.0}, torch::kDouble));  // in place: the tracker sees it
  tracker.record(5);
  w.copy_(torch::tensor({0.0, 2.5}, torch::kDouble));
  tracker.record(10);
  EXPECT_EQ(tracker.steps(), (std::vector<int64_t>{0, 5, 10}));
  EXPECT_EQ(tracker.norms("w"), (std::vector<double>{5.0, 10.0, 2.5}));
  // max(|10 - 5|, |2.5 - 5|) / 5: relative to the first norm, not the last (which gives 2).
  EXPECT_DOUBLE_EQ(tracker.max_relative_change("w"), 1.0);
  EXPECT_EQ(tracker.trajectory_table("w"),
            "# step w[0] w[1] norm\n0 3 4 5\n5 6 8 10\n10 0 2.5 2.5\n");
  EXPECT_EQ(tracker.norms_table(), "# step w\n0 5\n5 10\n10 2.5\n");
  EXPECT_THROW(tracker.norms("v"), std::out_of_range);
}

}  // namespace
}  // namespace normexp
