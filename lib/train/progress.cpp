#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace normexp::train {

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

Progress::Mode Progress::parse_mode(const std::string& mode) {
  if (mode == "bar") return Mode::Bar;
  if (mode == "plain") return Mode::Plain;
  if (mode == "none") return Mode::None;
  return isatty(fileno(stderr)) ? Mode::Bar : Mode::Plain;
}

Progress::Progress(Mode mode, int64_t epochs) : mode_(mode), epochs_(epochs) {}

bool Progress::due() const {
  if (mode_ != Mode::Bar) return false;
  return std::chrono::steady_clock::now() - last_draw_ > std::chrono::milliseconds(200);
}

void Progress::draw(int64_t epoch, int64_t step, int64_t steps, double loss, double eta_s) {
  if (mode_ != Mode::Bar) return;
  last_draw_ = std::chrono::steady_clock::now();
  constexpr int kWidth = 24;
  const int filled = steps > 0 ? static_cast<int>(kWidth * step / steps) : 0;
  std::fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s%s] %lld/%lld loss %.4f ETA %s",
               static_cast<long long>(epoch), static_cast<long long>(epochs_),
               std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
               static_cast<long long>(step), static_cast<long long>(steps), loss,
               format_duration(eta_s).c_str());
  std::fflush(stderr);
  bar_open_ = true;
}

void Progress::epoch_done(const std::string& summary) {
  if (mode_ == Mode::None) return;
  if (bar_open_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    bar_open_ = false;
  }
  spdlog::info("{}", summary);
}

}  // namespace normexp::train
