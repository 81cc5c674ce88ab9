// The direct convolution kernels, AVX2+FMA, float32: for few input or output channels per group,
// depthwise convs and 1D rows, where an implicit GEMM would spend its time packing or waste its tile.
#pragma once
#include "dispatch.h"
#include "kernels.h"

namespace medconv {

// Needs stride 1 along W, except where conv_tiles1d_applies or conv_phase_rows_applies; any stride,
// padding and dilation elsewhere. Picks one of the kernels below by shape.
// isa: the 1D tiles' register tile (AVX2's 6 x 16 or AVX-512's 8 x 32); the other kernels are AVX2's.
void conv_direct_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                          Isa isa = Isa::avx2);

// The row-blocked kernel (conv_rows_avx2.cpp) for stride 1 and no dilation along H and W, and a
// KH x KW of 3x3, 5x5 or 7x7; false (nothing written) for any other shape.
bool conv_rows_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu);

// Whether conv_rows_avx2_f32 takes s, and whether it runs s in channel tiles (6+ output channels per
// group: the GEMM's register tile without its packing).
bool conv_rows_applies(const ConvShape& s);
bool conv_rows_channel_tiles(const ConvShape& s);

// 1D convs with many channels (conv_tiles1d_avx2.cpp): kernel and input along W only, 8+ output and
// 32+ input taps (channels x KW) per group; any stride up to 4 and dilation along W.
bool conv_tiles1d_applies(const ConvShape& s);
void conv_tiles1d_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                           bool relu, Isa isa);

// 1x1 convs (stride 1, no padding) with 1-8 output channels per group (conv_pointwise_avx2.cpp).
bool conv_pointwise_applies(const ConvShape& s);
void conv_pointwise_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                             bool relu);

// One input channel per group and a stride of 2-4 along W (conv_phase_rows_avx2.cpp): depthwise
// and single-channel convs, any kernel, stride elsewhere, padding and dilation.
bool conv_phase_rows_applies(const ConvShape& s);
void conv_phase_rows_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                              bool relu);

}  // namespace medconv
