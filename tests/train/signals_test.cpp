// SignalScope: the first SIGINT/SIGTERM asks the run to stop (and nothing else), a second one
// ends the process at once with 128 + signal, each scope starts unasked, and the handlers that
// were there before come back when the scope ends.

#include <csignal>
#include <cstdlib>

#include <gtest/gtest.h>

#include "train/signals.h"

namespace normexp::train {
namespace {

volatile std::sig_atomic_t g_outer_calls = 0;
extern "C" void outer_handler(int) { ++g_outer_calls; }

TEST(SignalScope, TheFirstSignalOnlyAsksToStopAndEachScopeStartsUnasked) {
  for (const int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig);
    SignalScope scope;
    ASSERT_FALSE(SignalScope::stop_requested());  // else the raise below ends the binary
    std::raise(sig);  // would end the test binary were the handler not installed
    EXPECT_TRUE(SignalScope::stop_requested());
  }
  // A run after an interrupted one (sweeps, experiments' arms) must not stop at once.
  SignalScope next;
  EXPECT_FALSE(SignalScope::stop_requested());
}

TEST(SignalScope, PreviousHandlersComeBackWhenTheScopeEnds) {
  const auto old_int = std::signal(SIGINT, outer_handler);
  const auto old_term = std::signal(SIGTERM, outer_handler);
  g_outer_calls = 0;
  {
    SignalScope scope;
    std::raise(SIGINT);
    EXPECT_EQ(g_outer_calls, 0) << "the scope's handler should have taken the signal";
  }
  // Asked first, so that a scope that kept its handler fails here instead of exiting below.
  for (const int sig : {SIGINT, SIGTERM}) {
    struct sigaction now {};
    ASSERT_EQ(sigaction(sig, nullptr, &now), 0);
    ASSERT_EQ(now.sa_handler, &outer_handler) << "signal " << sig;
  }
  std::raise(SIGINT);
  std::raise(SIGTERM);
  EXPECT_EQ(g_outer_calls, 2);
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
}

// Ctrl-C twice (or the scheduler's TERM after the user's INT) must not wait for a checkpoint.
TEST(SignalScopeDeathTest, ASecondSignalExitsAtOnceWith128PlusItsNumber) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        SignalScope scope;
        std::raise(SIGINT);
        std::raise(SIGTERM);
        std::_Exit(0);  // not reached
      },
      ::testing::ExitedWithCode(128 + SIGTERM), "");
  EXPECT_EXIT(
      {
        SignalScope scope;
        std::raise(SIGTERM);
        std::raise(SIGINT);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(128 + SIGINT), "");
}

}  // namespace
}  // namespace normexp::train
