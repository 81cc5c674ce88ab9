// Kernels compiled with -mavx2 -mfma; only reached through the dispatch table.
#pragma once
#include "kernels.h"

namespace medconv {}  // namespace medconv
