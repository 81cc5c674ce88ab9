// Kernels compiled with the AVX-512 flags, one family per file; each adds its entries to the table
// (which starts as the AVX2 table, so whatever is not specialised here runs AVX2).
#pragma once
#include "dispatch.h"
#include "kernels.h"

namespace medconv {

void add_conv_avx512(KernelTable& t);    // conv_avx512.cpp, gemm_avx512.cpp
void add_linear_avx512(KernelTable& t);  // linear_avx512.cpp
void add_eltwise_avx512(KernelTable& t); // act_avx512.cpp
void add_softmax_avx512(KernelTable& t); // softmax_avx512.cpp: rows (inner 1, 16+ long); the rest as before

// One 8-channel x 32-column tile of conv_tiles1d_avx2.cpp's 1D convs (conv_tiles1d_avx512.cpp): y rows
// r < mr, columns < nr = act(bias8[r] + sum over (c, k) in order of ap[(c KW + k) 8 + r] *
// (rows + c channel_stride + tap_offset[k] + j)[0..32)).
void conv_tiles1d_tile_avx512(const float* ap, const float* rows, int64_t j, const int64_t* tap_offset, int64_t KW,
                              int64_t Cg, int64_t channel_stride, const float* bias8, float* y, int64_t ldy, int mr,
                              int nr, bool relu);

// 3x3 stride-1 "same" convs of one input and one output channel per group, rows a multiple of 16
// floats (conv_depthwise_avx512.cpp): conv_rows_avx2.cpp's sums, 16 columns a vector. False, and
// nothing written, where the shape does not fit or a streamed output is not 64-byte aligned.
bool conv_depthwise3x3_avx512_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                                  bool relu);

}  // namespace medconv
