// Kernels compiled with -mavx2 -mfma, one family per file; each adds its entries to the table.
#pragma once
#include "dispatch.h"

namespace medconv {

void add_conv_avx2(KernelTable& t);      // conv_avx2.cpp, gemm_avx2.cpp
void add_linear_avx2(KernelTable& t);    // linear_avx2.cpp
void add_eltwise_avx2(KernelTable& t);   // act_avx2.cpp, softmax_avx2.cpp
void add_pool_avx2(KernelTable& t);      // pool_avx2.cpp
void add_adaptive_pool_avx2(KernelTable& t);  // adaptive_pool_avx2.cpp
void add_batchnorm_avx2(KernelTable& t); // batchnorm_avx2.cpp
void add_interpolate_avx2(KernelTable& t);  // interpolate_avx2.cpp
void add_pad_avx2(KernelTable& t);       // pad_avx2.cpp

// conv_avx2.cpp: the float32 conv plan, cached per (isa, shape): Winograd, the direct kernel, or
// `gemm_conv` (each ISA's implicit GEMM: the AVX-512 table passes its own).
using ConvGemmF32 = void (*)(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                             bool relu);
void conv_forward_planned_f32(Isa isa, ConvGemmF32 gemm_conv, const ConvShape& s, const float* x, const float* w,
                              const float* bias, float* y, bool relu);

}  // namespace medconv
