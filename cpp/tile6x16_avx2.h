// The 6 x 16 register tile of the AVX2 SGEMM (gemm_avx2.cpp) and of the direct kernel's channel
// tiles (conv_rows_avx2.cpp): 12 accumulators, rows r = 0..5, columns 0..7 (c[r]0) and 8..15
// (c[r]1). Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

namespace medconv {
namespace avx2 {

// Named members, not an array: the compiler keeps these in registers.
struct Tile6x16 {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
};

// t row r += a[r] * (b0 | b1), one FMA per element, for the first MR (2, 4 or 6) rows.
template <int MR = 6>
inline __attribute__((always_inline)) void rank1_update(Tile6x16& t, const float* a, __m256 b0, __m256 b1) {
  __m256 av = _mm256_broadcast_ss(a + 0);
  t.c00 = _mm256_fmadd_ps(av, b0, t.c00); t.c01 = _mm256_fmadd_ps(av, b1, t.c01);
  av = _mm256_broadcast_ss(a + 1);
  t.c10 = _mm256_fmadd_ps(av, b0, t.c10); t.c11 = _mm256_fmadd_ps(av, b1, t.c11);
  if constexpr (MR > 2) {
    av = _mm256_broadcast_ss(a + 2);
    t.c20 = _mm256_fmadd_ps(av, b0, t.c20); t.c21 = _mm256_fmadd_ps(av, b1, t.c21);
    av = _mm256_broadcast_ss(a + 3);
    t.c30 = _mm256_fmadd_ps(av, b0, t.c30); t.c31 = _mm256_fmadd_ps(av, b1, t.c31);
  }
  if constexpr (MR > 4) {
    av = _mm256_broadcast_ss(a + 4);
    t.c40 = _mm256_fmadd_ps(av, b0, t.c40); t.c41 = _mm256_fmadd_ps(av, b1, t.c41);
    av = _mm256_broadcast_ss(a + 5);
    t.c50 = _mm256_fmadd_ps(av, b0, t.c50); t.c51 = _mm256_fmadd_ps(av, b1, t.c51);
  }
}

// f(r, row r's columns 0..7, columns 8..15) for r = 0..5, in order.
template <class F>
inline __attribute__((always_inline)) void for_each_row(const Tile6x16& t, F f) {
  f(0, t.c00, t.c01);
  f(1, t.c10, t.c11);
  f(2, t.c20, t.c21);
  f(3, t.c30, t.c31);
  f(4, t.c40, t.c41);
  f(5, t.c50, t.c51);
}

}  // namespace avx2
}  // namespace medconv
