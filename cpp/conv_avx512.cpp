// Convolution, AVX-512F, float32: the implicit GEMM of conv_gemm.h on the 8x32 SGEMM. Shapes the
// plan gives to another algorithm (Winograd, the direct kernel for few input channels) run the
// base table's convolution, AVX2's; float64 stays on the base table too.
#include <cstdlib>
#include <cstring>

#include "avx512_kernels.h"
#include "conv_gemm.h"
#include "gemm_avx512.h"
#include "winograd_avx2.h"

namespace medconv {
namespace {

using ConvFn = decltype(Kernels<float>::conv_forward);
ConvFn g_base_conv = nullptr;  // the base table's conv, set once when the avx512 table is built

// The AVX2 plan's choice of the implicit GEMM: MEDCONV_CONV_ALGO=gemm, or, left to the rule, a
// shape that is neither Winograd's nor the direct kernel's (stride 1 along W with at most 2 input
// channels per group or at most 27 taps).
bool plan_is_gemm(const ConvShape& s) {
  const char* algo = std::getenv("MEDCONV_CONV_ALGO");
  if (algo && *algo && std::strcmp(algo, "auto") != 0 && std::strcmp(algo, "winograd") != 0)
    return std::strcmp(algo, "gemm") == 0;
  if (winograd_applicable(s)) return false;
  const int64_t Cg = s.C / s.groups;
  const int64_t taps = Cg * s.KD * s.KH * s.KW;
  return !(s.stride[2] == 1 && (Cg <= 2 || taps <= 27));
}

// x: [N, C, D, H, W], w: [OC, C/G, KD, KH, KW], bias: [OC] or null, y: [N, OC, OD, OH, OW]
void conv_forward_avx512(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                         Activation act) {
  const bool empty = s.N == 0 || s.OC == 0 || s.C == 0 || s.OD * s.OH * s.OW == 0;
  if (empty || !plan_is_gemm(s)) {
    g_base_conv(s, x, w, bias, y, act);
    return;
  }
  conv_gemm::conv_gemm_f32<gemm_avx512::Gemm>(s, x, w, bias, y, act == Activation::relu);
}

}  // namespace

void add_conv_avx512(KernelTable& t) {
  g_base_conv = t.f32.conv_forward;
  t.f32.conv_forward = conv_forward_avx512;
}

}  // namespace medconv
