// The direct convolution kernel, AVX2+FMA, float32: for few input channels per group, few output
// channels per group and depthwise convs, where an implicit GEMM would spend its time packing.
#pragma once
#include "kernels.h"

namespace medconv {

// Needs stride 1 along W; any stride, padding and dilation elsewhere.
void conv_direct_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu);

}  // namespace medconv
