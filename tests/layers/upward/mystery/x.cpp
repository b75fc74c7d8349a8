// Fixture for the layer check: a folder that is no floor.
#include "core/error.h"
