// Convolution, AArch64 NEON, float32: the implicit GEMM of conv_gemm.h, and conv_subpixel.h's
// up-convs, on the 8x12 SGEMM, also for the 3x3 shapes that x86 gives to Winograd. Few input
// channels per group (where a GEMM would spend its time packing) run the base table's direct
// reference loops, which the compiler vectorises for NEON; float64 stays on the base table too.
#include <cstdlib>
#include <cstring>

#include "conv_gemm.h"
#include "conv_subpixel.h"
#include "gemm_neon.h"
#include "neon_kernels.h"

namespace medconv {
namespace {

using ConvFn = decltype(Kernels<float>::conv_forward);
ConvFn g_base_conv = nullptr;  // the base table's conv, set once when the neon table is built

// MEDCONV_CONV_ALGO=gemm or direct forces the choice; otherwise the GEMM unless the shape is the
// direct kernel's (stride 1 along W with at most 2 input channels per group or at most 27 taps).
bool plan_is_gemm(const ConvShape& s) {
  const char* algo = std::getenv("MEDCONV_CONV_ALGO");
  if (algo && std::strcmp(algo, "gemm") == 0) return true;
  if (algo && std::strcmp(algo, "direct") == 0) return false;
  const int64_t Cg = s.C / s.groups;
  const int64_t taps = Cg * s.KD * s.KH * s.KW;
  return !(s.stride[2] == 1 && (Cg <= 2 || taps <= 27));
}

// x: [N, C, D, H, W], w: [OC, C/G, KD, KH, KW], bias: [OC] or null, y: [N, OC, OD, OH, OW]
void conv_forward_neon(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                       Activation act) {
  const bool empty = s.N == 0 || s.OC == 0 || s.C == 0 || s.OD * s.OH * s.OW == 0;
  if (empty || !plan_is_gemm(s)) {
    g_base_conv(s, x, w, bias, y, act);
    return;
  }
  conv_gemm::conv_gemm<gemm_neon::Gemm>(s, x, w, bias, y, act == Activation::relu);
}

}  // namespace

void add_conv_neon(KernelTable& t) {
  g_base_conv = t.f32.conv_forward;
  t.f32.conv_forward = conv_forward_neon;
  t.f32.conv_subpixel = conv_subpixel::subpixel_f32<gemm_neon::Gemm>;
}

}  // namespace medconv
