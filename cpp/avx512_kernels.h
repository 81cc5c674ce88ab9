// Kernels compiled with the AVX-512 flags, one family per file; each adds its entries to the table
// (which starts as the AVX2 table, so whatever is not specialised here runs AVX2).
#pragma once
#include "dispatch.h"

namespace medconv {

void add_conv_avx512(KernelTable& t);    // conv_avx512.cpp, gemm_avx512.cpp
void add_linear_avx512(KernelTable& t);  // linear_avx512.cpp
void add_eltwise_avx512(KernelTable& t); // act_avx512.cpp

}  // namespace medconv
