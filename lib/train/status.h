#pragma once
// How a run or task ended; shared by lib/train (classification) and lib/experiments (tasks).

namespace normexp::train {

enum class RunStatus { Completed, Diverged, Interrupted };
const char* status_name(RunStatus s);  // "completed", "diverged", "interrupted"

}  // namespace normexp::train
