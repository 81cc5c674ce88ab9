// Kernels for AArch64 NEON (compiled on arm64 only), one family per file; each adds its entries
// to the table (which starts as the reference table).
#pragma once
#include "dispatch.h"

namespace medconv {

void add_conv_neon(KernelTable& t);     // conv_neon.cpp, gemm_neon.cpp
void add_linear_neon(KernelTable& t);   // linear_neon.cpp
void add_eltwise_neon(KernelTable& t);  // act_neon.cpp

}  // namespace medconv
