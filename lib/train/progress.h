#pragma once
// Progress for long runs: an in-place bar with ETA on a terminal, plain log lines otherwise
// (files, CI, Slurm logs), nothing with progress: none.

#include <chrono>
#include <cstdint>
#include <string>

namespace normexp::train {

std::string format_duration(double seconds);  // "42s", "3:05", "1:02:03"

class Progress {
 public:
  enum class Mode { Bar, Plain, None };
  // "auto" -> Bar when stderr is a terminal, else Plain.
  static Mode parse_mode(const std::string& mode);

  Progress(Mode mode, int64_t epochs);
  Mode mode() const { return mode_; }
  // True when a bar redraw is due (at most ~5 per second); callers fetch the running loss
  // only then, so there is no host sync per step.
  bool due() const;
  void draw(int64_t epoch, int64_t step, int64_t steps, double loss, double eta_s);
  // Ends the bar line (if any) and logs the epoch summary.
  void epoch_done(const std::string& summary);

 private:
  Mode mode_;
  int64_t epochs_;
  bool bar_open_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace normexp::train
