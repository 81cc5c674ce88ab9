// Packed DGEMM micro-kernel and driver, AVX2+FMA (see dgemm_avx2.h).
#include "dgemm_avx2.h"
#include "gemm_epilogue_avx2.h"

#include <immintrin.h>

namespace medconv {
namespace dgemm {

int64_t packed_a_size(int64_t M, int64_t K) { return gemm_common::packed_a_size<MR>(M, K); }

void pack_a(const double* a, int64_t lda, int64_t ska, int64_t M, int64_t K, double* Ap) {
  gemm_common::pack_a<MR>(a, lda, ska, M, K, Ap);
}

namespace {

// acc[r][0..7] = sum_k Ap[k][r] * Bp[k][0..7]; then C[r][0..nr) = (accumulate ? C : 0) + acc (+ epilogue)
// Ap: [kc][MR], Bp: [kc][NR] (32-byte aligned), C: rows of stride ldc
void micro_kernel(int64_t kc, const double* Ap, const double* Bp, double* C, int64_t ldc, int mr, int nr,
                  bool accumulate, bool last, const double* row_bias, const double* col_bias, bool relu) {
  __m256d acc[MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_pd();
  for (int r = 0; r < mr; ++r) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * NR), _MM_HINT_T0);
    const __m256d b0 = _mm256_load_pd(Bp + k * NR), b1 = _mm256_load_pd(Bp + k * NR + 4);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256d a = _mm256_broadcast_sd(Ap + k * MR + r);
      acc[r][0] = _mm256_fmadd_pd(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_pd(a, b1, acc[r][1]);
    }
  }
  if (mr == MR && nr == NR) {  // a full tile: the epilogue straight from the registers
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r)
      avx2::epilogue_row(C + r * ldc, acc[r][0], acc[r][1], accumulate, row_bias ? row_bias + r : nullptr, col_bias,
                         last && relu);
    return;
  }
  alignas(32) double tile[MR][NR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) _mm256_store_pd(tile[r], acc[r][0]), _mm256_store_pd(tile[r] + 4, acc[r][1]);
  avx2::epilogue_partial(tile, C, ldc, mr, nr, accumulate, last, row_bias, col_bias, relu);
}

}  // namespace

void gemm_columns(int64_t M, int64_t K, const double* Ap, const gemm_common::PackBOf<double>& pack_b, int64_t j0,
                  int64_t j1, double* C, int64_t ldc, const gemm_common::EpilogueOf<double>& ep, double* work) {
  gemm_common::gemm_blocked<MR, NR, KC, NC>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work,
                                            [](auto... args) { micro_kernel(args...); });
}

}  // namespace dgemm
}  // namespace medconv
