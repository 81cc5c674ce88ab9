// Shared by the Winograd kernels: F(4x4, 3x3)'s input transform (winograd_avx2.cpp and the weight
// gradient's conv_weight_grad_winograd_avx2.cpp) and the filter loads of both Winograd convolutions
// (winograd_avx2.cpp, winograd_s2_avx2.cpp). Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "lanes_avx2.h"

namespace medconv {
namespace {

// t = B^T d, d and t strided arrays of 6 vectors.
inline void bt6(const __m256* d, int ds, __m256* t, int ts) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f);
  const __m256 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
  t[0] = _mm256_fmadd_ps(four, d0, _mm256_fnmadd_ps(five, d2, d4));
  t[ts] = _mm256_fnmadd_ps(four, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4));
  t[2 * ts] = _mm256_fmadd_ps(four, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3));
  const __m256 a = _mm256_sub_ps(d3, d1), b = _mm256_sub_ps(d4, d2);
  t[3 * ts] = _mm256_fmadd_ps(two, a, b);
  t[4 * ts] = _mm256_fnmadd_ps(two, a, b);
  t[5 * ts] = _mm256_fmadd_ps(four, d1, _mm256_fnmadd_ps(five, d3, d5));
}

// tap[t], lane r: tap t (3 kh + kw) of the 3x3 filter f + r * stride for r < rows, zero lanes
// after: an 8x8 transpose of the filters' first 8 taps, tap 8 separately.
inline void load_filter_taps(const float* f, int64_t stride, int64_t rows, __m256* tap) {
  __m256 rowv[8];
  alignas(32) float t8[8] = {};
  for (int r = 0; r < 8; ++r) {
    if (r < rows) {
      rowv[r] = _mm256_loadu_ps(f + r * stride);
      t8[r] = f[r * stride + 8];
    } else {
      rowv[r] = _mm256_setzero_ps();
    }
  }
  avx2::transpose8(rowv, tap);
  tap[8] = _mm256_load_ps(t8);
}

}  // namespace
}  // namespace medconv
