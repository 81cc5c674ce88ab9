// Dense layer y = x w^T + bias on the 8x32 AVX-512F SGEMM, float32 (conv_gemm.h's linear_gemm).
#include "avx512_kernels.h"
#include "conv_gemm.h"
#include "gemm_avx512.h"

namespace medconv {
namespace {

using LinearFn = decltype(Kernels<float>::linear);
LinearFn g_base_linear = nullptr;  // the base table's linear: empty shapes, and AVX2's dot products

// x: [M, K], w: [N, K], bias: [N] or null, y: [M, N]
void linear_avx512(const float* x, const float* w, const float* bias, float* y, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0 || K == 0 || (N <= 4 && K >= 64)) {  // up to 4 outputs: a read of x, not a GEMM
    g_base_linear(x, w, bias, y, M, N, K);
    return;
  }
  conv_gemm::linear_gemm<gemm_avx512::Gemm>(x, w, bias, y, M, N, K);
}

}  // namespace

void add_linear_avx512(KernelTable& t) {
  g_base_linear = t.f32.linear;
  t.f32.linear = linear_avx512;
}

}  // namespace medconv
