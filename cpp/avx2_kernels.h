// Kernels compiled with -mavx2 -mfma, one family per file; each adds its entries to the table.
#pragma once
#include "dispatch.h"

namespace medconv {

void add_conv_avx2(KernelTable& t);      // conv_avx2.cpp, gemm_avx2.cpp
void add_linear_avx2(KernelTable& t);    // linear_avx2.cpp
void add_eltwise_avx2(KernelTable& t);   // act_avx2.cpp, softmax_avx2.cpp
void add_pool_avx2(KernelTable& t);      // pool_avx2.cpp
void add_batchnorm_avx2(KernelTable& t); // batchnorm_avx2.cpp
void add_interpolate_avx2(KernelTable& t);  // interpolate_avx2.cpp

}  // namespace medconv
