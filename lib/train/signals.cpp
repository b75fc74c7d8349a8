#include "train/signals.h"

#include <csignal>
#include <cstdlib>

namespace normexp::train {

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal != 0) std::_Exit(128 + sig);
  g_stop_signal = sig;
}
}  // namespace

SignalScope::SignalScope() {
  g_stop_signal = 0;
  old_int_ = std::signal(SIGINT, on_stop_signal);
  old_term_ = std::signal(SIGTERM, on_stop_signal);
}

SignalScope::~SignalScope() {
  std::signal(SIGINT, old_int_);
  std::signal(SIGTERM, old_term_);
}

bool SignalScope::stop_requested() { return g_stop_signal != 0; }

}  // namespace normexp::train
