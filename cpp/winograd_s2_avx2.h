// 3x3 stride-2 convolution through Winograd F(4x4, 2x2) over the four stride phases, AVX2+FMA,
// float32 (winograd_s2_avx2.cpp).
#pragma once
#include "kernels.h"
#include "packed_gemm.h"

namespace medconv {

// True where the planner should take it: 3x3, stride 2 and dilation 1 in (H, W), any padding and
// groups; in 3D any kernel depth, depth stride, dilation and padding (depth runs direct). Unless
// MEDCONV_CONV_ALGO=winograd (then wherever it is possible at all), it also needs >= 8 input and
// output channels per group, rows of tiles that fill the 8-tile vectors well, and enough tiles to
// pay for the transformed filters.
bool winograd_s2_applicable(const ConvShape& s);

// y = act(bias + conv(x, w)). Its extra rounding error (tests/test_winograd.py): within the same
// bounds as F(4x4, 3x3) (measured <= 6e-6 * max|y64| on unit-normal data). Bitwise the same for any
// thread count. Returns false when some output came out non-finite; the caller then recomputes y
// with an exact algorithm.
// The transforms are AVX2; the GEMMs run on `gemm`, one over 16-column panels (panel16_gemm).
bool conv_winograd_s2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                          bool relu, const PackedGemm& gemm);

}  // namespace medconv
