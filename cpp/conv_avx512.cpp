// Convolution, AVX-512F, float32: the AVX2 plan (conv_avx2.cpp) with the implicit GEMM of
// conv_gemm.h on the 8x32 SGEMM in place of AVX2's, and conv_subpixel.h's up-convs on it; Winograd
// and the direct kernel stay AVX2's, and float64 stays on the base (AVX2) table's DGEMM. Plans are
// cached under this ISA's own key.
#include "avx2_kernels.h"
#include "avx512_kernels.h"
#include "conv_gemm.h"
#include "conv_subpixel.h"
#include "gemm_avx512.h"

namespace medconv {
namespace {

void conv_gemm_avx512_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                          bool relu) {
  conv_gemm::conv_gemm<gemm_avx512::Gemm>(s, x, w, bias, y, relu);
}

// x: [N, C, D, H, W], w: [OC, C/G, KD, KH, KW], bias: [OC] or null, y: [N, OC, OD, OH, OW]
void conv_forward_avx512(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                         Activation act) {
  conv_forward_planned_f32(Isa::avx512, conv_gemm_avx512_f32, s, x, w, bias, y, act == Activation::relu);
}

}  // namespace

void add_conv_avx512(KernelTable& t) {
  t.f32.conv_forward = conv_forward_avx512;
  t.f32.conv_subpixel = conv_subpixel::subpixel_f32<gemm_avx512::Gemm>;
}

}  // namespace medconv
