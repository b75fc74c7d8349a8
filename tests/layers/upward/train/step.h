#pragma once
// Fixture for the layer check: train may include nn (a floor below).
#include "nn/layer.h"
