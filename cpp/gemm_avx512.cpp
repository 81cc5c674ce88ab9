// Packed SGEMM micro-kernel and driver, AVX-512F (see gemm_avx512.h).
#include "gemm_avx512.h"

#include <immintrin.h>

#include "gemm_common.h"

namespace medconv {
namespace gemm_avx512 {

int64_t packed_a_size(int64_t M, int64_t K) { return gemm_common::packed_a_size<MR>(M, K); }

void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
  gemm_common::pack_a<MR>(a, lda, ska, M, K, Ap);
}

namespace {

// The lanes [0, n) of a 16-lane vector, n clamped to [0, 16].
inline __mmask16 first_lanes(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1);
}

// acc[r][0..31] = sum_k Ap[k][r] * Bp[k][0..31] (k in order); then for r < mr, j < nr:
// C[r][j] = (accumulate ? C[r][j] : row_bias[r] or col_bias[j] or 0) + acc[r][j], relu'd when last.
// Ap: [kc][MR], Bp: [kc][NR] (64-byte aligned), C: rows of stride ldc
void micro_kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                  bool accumulate, bool last, const float* row_bias, const float* col_bias, bool relu) {
  __m512 acc[MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int r = 0; r < mr; ++r) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * NR + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(Ap + (k + 16) * MR), _MM_HINT_T0);
    const __m512 b0 = _mm512_load_ps(Bp + k * NR), b1 = _mm512_load_ps(Bp + k * NR + 16);
    const float* a = Ap + k * MR;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {  // a broadcast operand: vfmadd231ps zmm, zmm, [a + 4r]{1to16}
      const __m512 av = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  // Columns past nr are masked off: masked loads do not touch (or fault on) those lanes.
  const __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr - 16);
  const __mmask16 all = static_cast<__mmask16>(0xFFFF);
  const __m512 zero = _mm512_setzero_ps();
  __m512 cb0 = zero, cb1 = zero;
  if (!accumulate && !row_bias && col_bias) {
    cb0 = _mm512_maskz_loadu_ps(m0, col_bias);
    cb1 = _mm512_maskz_loadu_ps(m1, col_bias + 16);
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
    float* crow = C + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (accumulate) {
      v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, crow), v0);
      v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, crow + 16), v1);
    } else if (row_bias) {  // bias first, as the reference: bias + sum
      const __m512 b = _mm512_set1_ps(row_bias[r]);
      v0 = _mm512_add_ps(b, v0);
      v1 = _mm512_add_ps(b, v1);
    } else if (col_bias) {
      v0 = _mm512_add_ps(cb0, v0);
      v1 = _mm512_add_ps(cb1, v1);
    }
    if (last && relu) {  // max(0, v) keeping NaN: max_ps returns its second operand on NaN
      // (the all-lanes masked form: GCC 12 warns about the unmasked one's undefined source)
      v0 = _mm512_mask_max_ps(v0, all, zero, v0);
      v1 = _mm512_mask_max_ps(v1, all, zero, v1);
    }
    _mm512_mask_storeu_ps(crow, m0, v0);
    _mm512_mask_storeu_ps(crow + 16, m1, v1);
  }
}

}  // namespace

void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work) {
  gemm_common::gemm_blocked<MR, NR, KC, NC>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work, micro_kernel);
}

}  // namespace gemm_avx512
}  // namespace medconv
