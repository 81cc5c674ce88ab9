// Winograd F(4x4, 3x3) convolution, AVX2+FMA, float32 (winograd_avx2.cpp).
#pragma once
#include "kernels.h"
#include "packed_gemm.h"

namespace medconv {

// True where the planner should take Winograd: 3x3 in (H, W), stride 1 in (H, W), any dilation and
// padding; depth (KD, stride, dilation, padding along D) runs direct, so 3x3x3 convs qualify too.
// Unless MEDCONV_CONV_ALGO=winograd (then wherever it is possible at all), it also needs >= 8 input
// and output channels per group and outputs that fill the 4x4 tiles well: where it pays.
bool winograd_applicable(const ConvShape& s);

// y = act(bias + conv(x, w)) through F(4x4, 3x3). Its extra rounding error (tests/test_winograd.py):
// max|y - y64| <= 5e-5 * max|y64| on unit-normal data (measured <= 1.2e-5, against <= 5e-7 for the
// implicit GEMM), <= 1e-5 * max(conv(|x|, |w|) + |bias|) on any data (measured <= 1.4e-6).
// Results are bitwise the same for any thread count. Returns false when some output came out
// non-finite (Inf/NaN in the input or weights, or overflow): Winograd's transforms spread those over
// a whole 4x4 tile, so the caller must then recompute y with an exact algorithm.
// The transforms are AVX2; the 36 GEMMs run on `gemm`, one over 16-column panels (panel16_gemm).
bool conv_winograd_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                       const PackedGemm& gemm);

}  // namespace medconv
