// Row-major matrices packed as a packed GEMM's A (packed_gemm.h), for the weight gradients
// (conv_weight_grad_gemm_avx2.cpp, conv_weight_grad_winograd_avx2.cpp). Include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "lanes_avx2.h"
#include "packed_gemm.h"

namespace medconv {
namespace {

// gemm.pack_a of A(i, k) = a[i * lda + k] (i < M, k < K): by 8 x 8 transposes where the tile's rows
// come in eights (AVX-512's), else the GEMM's own (the weight gradient's output-gradient rows: its
// strided loads were 6% of that gradient's time).
inline void pack_rows_as_a(const PackedGemm& gemm, const float* a, int64_t lda, int64_t M, int64_t K, float* Ap) {
  if (gemm.mr % 8 != 0) return gemm.pack_a(a, lda, 1, M, K, Ap);
  const int mr = gemm.mr;
  for (int64_t i0 = 0; i0 < M; i0 += mr)
    for (int r0 = 0; r0 < mr; r0 += 8) {
      float* dst = Ap + i0 * K + r0;  // panel i0 / mr, rows r0..r0+7
      auto row = [&](int r) { return i0 + r0 + r < M ? a + (i0 + r0 + r) * lda : nullptr; };
      int64_t k = 0;
      for (; k + 8 <= K; k += 8) {
        __m256 r[8], c[8];
        for (int i = 0; i < 8; ++i) r[i] = row(i) ? _mm256_loadu_ps(row(i) + k) : _mm256_setzero_ps();
        avx2::transpose8(r, c);
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (k + j) * mr, c[j]);
      }
      for (; k < K; ++k)
        for (int i = 0; i < 8; ++i) dst[k * mr + i] = row(i) ? row(i)[k] : 0.0f;
    }
}

}  // namespace
}  // namespace medconv
