// The register tile of conv_tiles1d_avx2.cpp's 1D convolutions on AVX-512F: 8 output channels x 32
// columns (16 zmm accumulators) per tile, the AVX2 tile's sums in the same order (the same bits).
#include <immintrin.h>

#include <cstdint>

#include "avx512_kernels.h"
#include "vec_avx512.h"

namespace medconv {

using avx512::first_lanes;

void conv_tiles1d_tile_avx512(const float* ap, const float* rows, int64_t j, const int64_t* tap_offset, int64_t KW,
                              int64_t Cg, int64_t channel_stride, const float* bias8, float* y, int64_t ldy, int mr,
                              int nr, bool relu) {
  __m512 acc[8][2];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) acc[r][0] = acc[r][1] = _mm512_set1_ps(bias8[r]);
  const float* a = ap;
  for (int64_t c = 0; c < Cg; ++c) {
    const float* base = rows + c * channel_stride + j;
#pragma GCC unroll 2
    for (int64_t k = 0; k < KW; ++k, a += 8) {
      const float* b = base + tap_offset[k];
      const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        const __m512 av = _mm512_set1_ps(a[r]);
        acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      }
    }
  }
  const __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr - 16);
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) {
    if (r >= mr) break;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (relu) {  // max(0, v): NaN stays NaN (the all-lanes masked form: see vec_avx512.h)
      v0 = _mm512_mask_max_ps(v0, 0xFFFF, zero, v0);
      v1 = _mm512_mask_max_ps(v1, 0xFFFF, zero, v1);
    }
    _mm512_mask_storeu_ps(y + r * ldy, m0, v0);
    _mm512_mask_storeu_ps(y + r * ldy + 16, m1, v1);
  }
}

}  // namespace medconv
