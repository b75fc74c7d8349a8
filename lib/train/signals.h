#pragma once
// SIGINT/SIGTERM during a run: the first signal asks the run to stop at the next safe point
// (finish the step, write a checkpoint, record status "interrupted"); a second one exits at
// once with 128 + signal.

namespace normexp::train {

// Installs the handlers for its lifetime and restores the previous ones after.
class SignalScope {
 public:
  SignalScope();
  ~SignalScope();
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;
  static bool stop_requested();

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

}  // namespace normexp::train
