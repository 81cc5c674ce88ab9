// Dense layer y = x w^T + bias on the 6x16 AVX2+FMA SGEMM, float32 (conv_gemm.h's linear_gemm_f32).
#include "avx2_kernels.h"
#include "conv_gemm.h"
#include "gemm_avx2.h"

namespace medconv {
namespace {

// x: [M, K], w: [N, K], bias: [N] or null, y: [M, N]
void linear_avx2(const float* x, const float* w, const float* bias, float* y, int64_t M, int64_t N, int64_t K) {
  conv_gemm::linear_gemm_f32<gemm::Gemm>(x, w, bias, y, M, N, K);
}

}  // namespace

void add_linear_avx2(KernelTable& t) { t.f32.linear = linear_avx2; }

}  // namespace medconv
