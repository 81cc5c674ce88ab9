// Lane work shared by the AVX2 Winograd kernels (winograd_avx2.cpp, winograd_s2_avx2.cpp): 8 x 8
// transposes, the (de)interleaving of 4x4 tiles in 8 lanes, and the checks and ReLU of finished
// tiles. Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

namespace medconv {
namespace avx2 {

// c[j] lane i = r[i] lane j.
inline void transpose8(const __m256* r, __m256* c) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  c[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  c[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  c[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  c[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// v0..v3 hold 32 consecutive floats x[0..31]; p[r] gets x[4m + r], m = 0..7.
inline void deinterleave4(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256* p) {
  const __m256 a = _mm256_permute2f128_ps(v0, v2, 0x20), b = _mm256_permute2f128_ps(v0, v2, 0x31);
  const __m256 c = _mm256_permute2f128_ps(v1, v3, 0x20), d = _mm256_permute2f128_ps(v1, v3, 0x31);
  const __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
  const __m256 t2 = _mm256_unpacklo_ps(c, d), t3 = _mm256_unpackhi_ps(c, d);
  p[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  p[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  p[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  p[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

// The inverse of deinterleave4: q (32 floats) with q[4m + r] = p[r][m]. Paired tiles: the inverse of
// the 64-bit transpose in load_cols, q[8b + 2r + l] = p[r][2b + l].
template <bool paired>
inline void interleave4(const __m256* p, __m256* q) {
  if (paired) {
    const __m256d a0 = _mm256_castps_pd(p[0]), a1 = _mm256_castps_pd(p[1]), a2 = _mm256_castps_pd(p[2]),
                  a3 = _mm256_castps_pd(p[3]);
    const __m256d t0 = _mm256_unpacklo_pd(a0, a1), t1 = _mm256_unpackhi_pd(a0, a1);
    const __m256d t2 = _mm256_unpacklo_pd(a2, a3), t3 = _mm256_unpackhi_pd(a2, a3);
    q[0] = _mm256_castpd_ps(_mm256_permute2f128_pd(t0, t2, 0x20));
    q[1] = _mm256_castpd_ps(_mm256_permute2f128_pd(t1, t3, 0x20));
    q[2] = _mm256_castpd_ps(_mm256_permute2f128_pd(t0, t2, 0x31));
    q[3] = _mm256_castpd_ps(_mm256_permute2f128_pd(t1, t3, 0x31));
    return;
  }
  const __m256 t0 = _mm256_unpacklo_ps(p[0], p[1]), t1 = _mm256_unpackhi_ps(p[0], p[1]);
  const __m256 t2 = _mm256_unpacklo_ps(p[2], p[3]), t3 = _mm256_unpackhi_ps(p[2], p[3]);
  const __m256 a = _mm256_shuffle_ps(t0, t2, 0x44), b = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 c = _mm256_shuffle_ps(t1, t3, 0x44), d = _mm256_shuffle_ps(t1, t3, 0xEE);
  q[0] = _mm256_permute2f128_ps(a, b, 0x20);
  q[1] = _mm256_permute2f128_ps(c, d, 0x20);
  q[2] = _mm256_permute2f128_ps(a, b, 0x31);
  q[3] = _mm256_permute2f128_ps(c, d, 0x31);
}

// The 16 outputs O of 8 finished 4x4 tiles: chk |= (sum - sum), whose bits are nonzero iff some
// output is Inf or NaN; then max(0, O) when relu (NaN kept).
inline void check_and_relu(__m256* O, __m256& chk, bool relu) {
  __m256 sum = O[0];
  for (int q = 1; q < 16; ++q) sum = _mm256_add_ps(sum, O[q]);
  chk = _mm256_or_ps(chk, _mm256_sub_ps(sum, sum));
  if (relu)
    for (int q = 0; q < 16; ++q) O[q] = _mm256_max_ps(_mm256_setzero_ps(), O[q]);
}

}  // namespace avx2
}  // namespace medconv
