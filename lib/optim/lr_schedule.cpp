#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace normexp::optim {

LrSchedule::LrSchedule(const ScheduleContext& ctx, double warmup_epochs)
    : ctx_(ctx),
      warmup_steps_(static_cast<int64_t>(std::llround(warmup_epochs * ctx.steps_per_epoch))),
      total_steps_(ctx.steps_per_epoch * ctx.epochs) {}

double LrSchedule::lr_at(int64_t step) const {
  const double lr = after_warmup(step);
  if (step < warmup_steps_) return lr * static_cast<double>(step + 1) / warmup_steps_;
  return lr;
}

namespace {
class Cosine : public LrSchedule {
 public:
  Cosine(const ScheduleContext& ctx, double warmup, double min_lr)
      : LrSchedule(ctx, warmup), min_lr_(min_lr) {}

 protected:
  double after_warmup(int64_t step) const override {
    // Cosine over the steps after warmup, reaching min_lr at the end of the run.
    const int64_t span = std::max<int64_t>(1, total_steps_ - warmup_steps_);
    const double t = std::clamp<double>(static_cast<double>(step - warmup_steps_) / span, 0, 1);
    return min_lr_ + (ctx_.base_lr - min_lr_) * 0.5 * (1.0 + std::cos(M_PI * t));
  }

 private:
  double min_lr_;
};

class MultiStep : public LrSchedule {
 public:
  MultiStep(const ScheduleContext& ctx, double warmup, std::vector<int64_t> milestones,
            double gamma)
      : LrSchedule(ctx, warmup), milestones_(std::move(milestones)), gamma_(gamma) {}

 protected:
  double after_warmup(int64_t step) const override {
    const int64_t epoch = step / ctx_.steps_per_epoch;
    int passed = 0;
    for (int64_t m : milestones_) passed += epoch >= m ? 1 : 0;
    return ctx_.base_lr * std::pow(gamma_, passed);
  }

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

class Constant : public LrSchedule {
 public:
  using LrSchedule::LrSchedule;

 protected:
  double after_warmup(int64_t) const override { return ctx_.base_lr; }
};
}  // namespace

std::vector<config::OptionSpec> schedule_common_options() {
  using namespace config;
  return {opt_float("warmup_epochs", 0.0, "linear warmup length in epochs (may be fractional)",
                    at_least(0))};
}

std::vector<config::OptionSpec> cosine_options() {
  using namespace config;
  return {opt_float("min_lr", 0.0, "learning rate at the end of the run", at_least(0))};
}

std::vector<config::OptionSpec> multistep_options() {
  using namespace config;
  return {
      opt_int_list("milestones", {100, 150}, "epochs at which the rate is multiplied by gamma",
                   at_least(1)),
      opt_float("gamma", 0.1, "factor applied at each milestone", greater_than(0)),
  };
}

std::unique_ptr<LrSchedule> make_cosine(const config::Params& p, const ScheduleContext& ctx) {
  const double min_lr = p.get_float("min_lr");
  if (min_lr > ctx.base_lr)
    throw p.error("min_lr", "is larger than the initial learning rate " +
                                std::to_string(ctx.base_lr));
  return std::make_unique<Cosine>(ctx, p.get_float("warmup_epochs"), min_lr);
}

std::unique_ptr<LrSchedule> make_multistep(const config::Params& p, const ScheduleContext& ctx) {
  auto milestones = p.get_int_list("milestones");
  if (!std::is_sorted(milestones.begin(), milestones.end()))
    throw p.error("milestones", "must be in increasing order");
  return std::make_unique<MultiStep>(ctx, p.get_float("warmup_epochs"), milestones,
                                     p.get_float("gamma"));
}

std::unique_ptr<LrSchedule> make_constant(const config::Params& p, const ScheduleContext& ctx) {
  return std::make_unique<Constant>(ctx, p.get_float("warmup_epochs"));
}

}  // namespace normexp::optim
