// The AVX2 micro-kernels' epilogue, for float (gemm_avx2.cpp) and double (dgemm_avx2.cpp): C row r
// of a tile two vectors wide = (accumulate ? C : bias) + the sum, then the ReLU after the last K
// pass. Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "gemm_common.h"

namespace medconv {
namespace avx2 {

inline __m256 vload(const float* p) { return _mm256_loadu_ps(p); }
inline __m256d vload(const double* p) { return _mm256_loadu_pd(p); }
inline void vstore(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void vstore(double* p, __m256d v) { _mm256_storeu_pd(p, v); }
inline __m256 vadd(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m256d vadd(__m256d a, __m256d b) { return _mm256_add_pd(a, b); }
inline __m256 vset1(float v) { return _mm256_set1_ps(v); }
inline __m256d vset1(double v) { return _mm256_set1_pd(v); }
// max(0, v) keeping NaN: max returns its second operand on NaN
inline __m256 vrelu(__m256 v) { return _mm256_max_ps(_mm256_setzero_ps(), v); }
inline __m256d vrelu(__m256d v) { return _mm256_max_pd(_mm256_setzero_pd(), v); }

// crow[0 .. 2 lanes) = epilogue(v0 | v1); row_bias: this row's bias, or null
template <class T, class V>
inline void epilogue_row(T* crow, V v0, V v1, bool accumulate, const T* row_bias, const T* col_bias, bool relu) {
  constexpr int kLanes = sizeof(V) / sizeof(T);
  if (accumulate) {
    v0 = vadd(vload(crow), v0);
    v1 = vadd(vload(crow + kLanes), v1);
  } else if (row_bias) {  // bias first, as the reference: bias + sum
    const V b = vset1(*row_bias);
    v0 = vadd(b, v0);
    v1 = vadd(b, v1);
  } else if (col_bias) {
    v0 = vadd(vload(col_bias), v0);
    v1 = vadd(vload(col_bias + kLanes), v1);
  }
  if (relu) v0 = vrelu(v0), v1 = vrelu(v1);
  vstore(crow, v0);
  vstore(crow + kLanes, v1);
}

// A partial tile (mr < MR rows or nr < NR columns) from its sums staged in `tile`: whole rows as
// epilogue_row, shorter ones as gemm_common's scalar epilogue.
template <int MR, int NR, class T>
inline void epilogue_partial(const T (&tile)[MR][NR], T* C, int64_t ldc, int mr, int nr, bool accumulate, bool last,
                             const T* row_bias, const T* col_bias, bool relu) {
  for (int r = 0; r < mr; ++r) {
    const T* rb = row_bias ? row_bias + r : nullptr;
    if (nr == NR)
      epilogue_row(C + r * ldc, vload(tile[r]), vload(tile[r] + NR / 2), accumulate, rb, col_bias, last && relu);
    else gemm_common::store_row_scalar(tile[r], C + r * ldc, nr, accumulate, last, rb, col_bias, relu);
  }
}

}  // namespace avx2
}  // namespace medconv
