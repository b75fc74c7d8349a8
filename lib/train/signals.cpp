#include "train/signals.h"

#include <atomic>
#include <csignal>
#include <cstdlib>

namespace normexp::train {

namespace {
// A signal to a process is handled by whichever of its threads (LibTorch's pools, the loader's
// workers) does not block it, so two signals back to back can run this handler on two threads
// at once: one atomic exchange decides which was first (a lock-free atomic is
// async-signal-safe; a volatile flag would let both see "none yet" and both wait).
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) std::_Exit(128 + sig);
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

bool SignalScope::stop_requested() { return g_stop_signal.load() != 0; }

}  // namespace normexp::train
