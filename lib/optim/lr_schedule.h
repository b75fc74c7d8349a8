#pragma once
// Learning-rate schedules, evaluated per iteration (so cosine decays smoothly within an
// epoch, as in Ikami et al. 2021's cosine schedule [18]). Every schedule has an optional linear warmup
// from ~0 to the base rate over `warmup_epochs`.

#include <cstdint>
#include <memory>
#include <vector>

#include "config/schema.h"

namespace normexp::optim {

struct ScheduleContext {
  double base_lr = 0.1;
  int64_t steps_per_epoch = 1;
  int64_t epochs = 1;
};

class LrSchedule {
 public:
  LrSchedule(const ScheduleContext& ctx, double warmup_epochs);
  virtual ~LrSchedule() = default;
  // The rate for iteration `step` (0-based, counted over the whole run).
  double lr_at(int64_t step) const;

 protected:
  // The schedule after warmup, at run progress `step` (total steps: total_steps_).
  virtual double after_warmup(int64_t step) const = 0;
  ScheduleContext ctx_;
  int64_t warmup_steps_;
  int64_t total_steps_;
};

std::vector<config::OptionSpec> schedule_common_options();
std::vector<config::OptionSpec> cosine_options();
std::vector<config::OptionSpec> multistep_options();
std::unique_ptr<LrSchedule> make_cosine(const config::Params& p, const ScheduleContext& ctx);
std::unique_ptr<LrSchedule> make_multistep(const config::Params& p, const ScheduleContext& ctx);
std::unique_ptr<LrSchedule> make_constant(const config::Params& p, const ScheduleContext& ctx);

}  // namespace normexp::optim
