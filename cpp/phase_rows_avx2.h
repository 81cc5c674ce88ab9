// An input row split into its stride phases along W, zero-padded (the 1D tiles of
// conv_tiles1d_avx2.cpp and the W-strided kernel of conv_phase_rows_avx2.cpp): with stride S, phase
// row p holds the columns p, p + S, p + 2S, ... so that the outputs of a vector read consecutive
// floats at every tap. Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace medconv {
namespace {  // internal linkage: the copy compiled with AVX2 flags stays in its file

// Where tap column q (kernel tap times dilation) starts, in phase rows of `len` floats each.
inline int64_t phase_tap_offset(int64_t q, int64_t S, int64_t len) { return (q % S) * len + q / S; }

// dst[p * len + j] = row[first + p + j S] inside [0, W), else 0, for p < S and j < len. Stride 1 is a
// copy; stride 2 splits 16 columns at a time into both phases where all of them lie in the row.
inline void split_row_phases(const float* row, int64_t W, int64_t first, int64_t S, int64_t len, float* dst) {
  int64_t v_lo = 0, v_hi = 0;  // j range of the stride-2 vector split
  if (S == 2) {
    v_lo = v_hi = first >= 0 ? 0 : (1 - first) / 2;
    while (v_hi + 8 <= len && first + 2 * v_hi + 15 < W) v_hi += 8;
  }
  for (int64_t p = 0; p < S; ++p) {
    float* d = dst + p * len;
    const int64_t at = first + p;  // input column of d[0]
    const int64_t lo = std::min(len, at >= 0 ? int64_t{0} : (-at + S - 1) / S);             // first j inside
    const int64_t hi = std::clamp<int64_t>(W > at ? (W - at + S - 1) / S : 0, lo, len);  // past the last
    std::fill(d, d + lo, 0.0f);
    std::fill(d + hi, d + len, 0.0f);
    if (S == 1) {
      std::memcpy(d + lo, row + at + lo, static_cast<size_t>(hi - lo) * sizeof(float));
      continue;
    }
    for (int64_t j = lo; j < hi; ++j) {
      if (j == v_lo && v_hi > v_lo) j = v_hi;
      if (j >= hi) break;
      d[j] = row[at + j * S];
    }
  }
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  for (int64_t j = v_lo; j < v_hi; j += 8) {
    const __m256 a = _mm256_loadu_ps(row + first + 2 * j), b = _mm256_loadu_ps(row + first + 2 * j + 8);
    _mm256_storeu_ps(dst + j, _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a, b, 0x88), order));
    _mm256_storeu_ps(dst + len + j, _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a, b, 0xDD), order));
  }
}

}  // namespace
}  // namespace medconv
