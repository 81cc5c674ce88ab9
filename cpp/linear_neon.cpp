// Dense layer y = x w^T + bias on the 8x12 NEON SGEMM, float32 (conv_gemm.h's linear_gemm).
#include "conv_gemm.h"
#include "gemm_neon.h"
#include "neon_kernels.h"

namespace medconv {
namespace {

using LinearFn = decltype(Kernels<float>::linear);
LinearFn g_base_linear = nullptr;  // the base table's linear, for empty shapes

// x: [M, K], w: [N, K], bias: [N] or null, y: [M, N]
void linear_neon(const float* x, const float* w, const float* bias, float* y, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0 || K == 0) {
    g_base_linear(x, w, bias, y, M, N, K);
    return;
  }
  conv_gemm::linear_gemm<gemm_neon::Gemm>(x, w, bias, y, M, N, K);
}

}  // namespace

void add_linear_neon(KernelTable& t) {
  g_base_linear = t.f32.linear;
  t.f32.linear = linear_neon;
}

}  // namespace medconv
