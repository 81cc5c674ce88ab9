// Packed SGEMM micro-kernel and driver, AVX2+FMA (see gemm_avx2.h).
#include "gemm_avx2.h"
#include "gemm_common.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace medconv {
namespace gemm {

int64_t packed_a_size(int64_t M, int64_t K) { return gemm_common::packed_a_size<MR>(M, K); }

void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
  gemm_common::pack_a<MR>(a, lda, ska, M, K, Ap);
}

namespace {

// acc[r][0..15] = sum_k Ap[k][r] * Bp[k][0..15]; then C[r][0..nr) = (accumulate ? C : 0) + acc (+ epilogue)
// Ap: [kc][MR], Bp: [kc][NR], C: rows of stride ldc
inline void micro_kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                         bool accumulate, bool last, const float* row_bias, const float* col_bias, bool relu) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
         c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
         c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
         c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int r = 0; r < mr; ++r) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(Ap + (k + 16) * MR), _MM_HINT_T0);
    const __m256 b0 = _mm256_load_ps(Bp + k * NR), b1 = _mm256_load_ps(Bp + k * NR + 8);
    const float* a = Ap + k * MR;
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
  }
  const __m256 zero = _mm256_setzero_ps();
  // C row r = epilogue(v0 | v1), 16 columns
  auto store_row = [&](int r, __m256 v0, __m256 v1) {
    float* crow = C + r * ldc;
    if (accumulate) {
      v0 = _mm256_add_ps(_mm256_loadu_ps(crow), v0);
      v1 = _mm256_add_ps(_mm256_loadu_ps(crow + 8), v1);
    } else if (row_bias) {  // bias first, as the reference: bias + sum
      const __m256 b = _mm256_set1_ps(row_bias[r]);
      v0 = _mm256_add_ps(b, v0);
      v1 = _mm256_add_ps(b, v1);
    } else if (col_bias) {
      v0 = _mm256_add_ps(_mm256_loadu_ps(col_bias), v0);
      v1 = _mm256_add_ps(_mm256_loadu_ps(col_bias + 8), v1);
    }
    if (last && relu) {  // max(0, v) keeping NaN: max_ps returns its second operand on NaN
      v0 = _mm256_max_ps(zero, v0);
      v1 = _mm256_max_ps(zero, v1);
    }
    _mm256_storeu_ps(crow, v0);
    _mm256_storeu_ps(crow + 8, v1);
  };
  if (mr == MR && nr == NR) {  // a full tile: the epilogue straight from the registers
    store_row(0, c00, c01);
    store_row(1, c10, c11);
    store_row(2, c20, c21);
    store_row(3, c30, c31);
    store_row(4, c40, c41);
    store_row(5, c50, c51);
    return;
  }
  alignas(32) float tile[MR][NR];
  _mm256_store_ps(tile[0], c00); _mm256_store_ps(tile[0] + 8, c01);
  _mm256_store_ps(tile[1], c10); _mm256_store_ps(tile[1] + 8, c11);
  _mm256_store_ps(tile[2], c20); _mm256_store_ps(tile[2] + 8, c21);
  _mm256_store_ps(tile[3], c30); _mm256_store_ps(tile[3] + 8, c31);
  _mm256_store_ps(tile[4], c40); _mm256_store_ps(tile[4] + 8, c41);
  _mm256_store_ps(tile[5], c50); _mm256_store_ps(tile[5] + 8, c51);
  for (int r = 0; r < mr; ++r) {
    if (nr == NR) store_row(r, _mm256_load_ps(tile[r]), _mm256_load_ps(tile[r] + 8));
    else gemm_common::store_row_scalar(tile[r], C + r * ldc, nr, accumulate, last, row_bias ? row_bias + r : nullptr,
                                       col_bias, relu);
  }
}

}  // namespace

void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work) {
  gemm_common::gemm_blocked<MR, NR, KC, NC>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work,
                                            [](auto... args) { micro_kernel(args...); });
}

}  // namespace gemm
}  // namespace medconv
