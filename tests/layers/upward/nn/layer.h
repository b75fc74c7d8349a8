#pragma once
// Fixture for the layer check (tests/CMakeLists.txt): nn may not include train.
#include <vector>
#include "nn/other.h"
#include "train/step.h"
