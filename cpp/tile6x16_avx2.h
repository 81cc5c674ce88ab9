// The 6 x 16 register tile of the AVX2 SGEMM (gemm_avx2.cpp) and of the direct kernel's channel
// tiles (conv_rows_avx2.cpp): 12 accumulators, rows r = 0..5, columns 0..7 (c[r]0) and 8..15
// (c[r]1). Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

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

// Every row r's 16 columns = bias6[r].
inline Tile6x16 bias_tile(const float* bias6) {
  Tile6x16 t;
  t.c00 = t.c01 = _mm256_set1_ps(bias6[0]);
  t.c10 = t.c11 = _mm256_set1_ps(bias6[1]);
  t.c20 = t.c21 = _mm256_set1_ps(bias6[2]);
  t.c30 = t.c31 = _mm256_set1_ps(bias6[3]);
  t.c40 = t.c41 = _mm256_set1_ps(bias6[4]);
  t.c50 = t.c51 = _mm256_set1_ps(bias6[5]);
  return t;
}

// c row r[0..nr) = t row r (ReLU'd if relu), for r < mr; rows ldc apart.
inline void store_tile(const Tile6x16& t, float* c, int64_t ldc, int mr, int nr, bool relu) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), n = _mm256_set1_epi32(nr);
  const __m256i m0 = _mm256_cmpgt_epi32(n, lane), m1 = _mm256_cmpgt_epi32(n, _mm256_add_epi32(lane, _mm256_set1_epi32(8)));
  for_each_row(t, [&](int r, __m256 v0, __m256 v1) {
    if (r >= mr) return;
    if (relu) v0 = _mm256_max_ps(zero, v0), v1 = _mm256_max_ps(zero, v1);  // NaN stays NaN
    float* cr = c + r * ldc;
    if (nr == 16) {
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      _mm256_maskstore_ps(cr, m0, v0);
      _mm256_maskstore_ps(cr + 8, m1, v1);
    }
  });
}

// Output channels per tile of the channel-tiled kernel: 6 channels x 16 columns hold 12
// accumulators, and each input vector loaded serves 6 FMAs (the GEMM micro-kernel's shape).
constexpr int kTileOC = 6;

// One tile: c[r][0..nr) = act(bias[r] + sum over the taps k in order of a[k][r] * b_k[0..nr)), for
// r < mr, with b_k = brow[k] + ow (16 floats readable) and a[k] = ap + aoff[k] (kTileOC weights,
// zero past mr). Per output the bias comes first and then one FMA per tap in order, as the row
// kernel (conv_rows_avx2.cpp) sums them, so both give the same bits.
// c: output row of channel 0, channels ldc apart
// MR (2, 4 or 6 >= mr): the channels computed, fewer for the last tile of a group.
template <int MR>
inline void channel_tile(int64_t nk, const float* const* brow, const int64_t* aoff, const float* ap, int64_t ow,
                         const float* bias6, float* c, int64_t ldc, int mr, int nr, bool relu) {
  Tile6x16 t = bias_tile(bias6);
#pragma GCC unroll 4
  for (int64_t k = 0; k < nk; ++k) {
    const float* b = brow[k] + ow;
    rank1_update<MR>(t, ap + aoff[k], _mm256_loadu_ps(b), _mm256_loadu_ps(b + 8));
  }
  store_tile(t, c, ldc, std::min(mr, MR), nr, relu);
}

}  // namespace avx2
}  // namespace medconv
