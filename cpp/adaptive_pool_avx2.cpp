// Adaptive average pooling, AVX2, float32: each output's window summed in float64 (as the
// reference does, in another order) and divided once. A global pool (output 1 x 1 x 1: every
// classifier and squeeze-excitation head) sums each contiguous plane from float32 groups of 4
// vectors; other outputs sum a row block's input rows into a float64 row, then each output's
// columns of it.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "aligned.h"
#include "avx2_kernels.h"
#include "parallel.h"
#include "pool_window.h"
#include "vecmath_avx2.h"

namespace medconv {

namespace {

using avx2::hsum_pd;
using avx2::high_pd;
using avx2::low_pd;

// The lines 16 KiB ahead of the sum are fetched as it goes: a single read stream, which the hardware
// prefetch alone kept at 41 GB/s (global pool of 8x64x128x128, 1 thread, Zen 5: 0.78 -> 0.54-0.61 ms;
// 4 KiB ahead 0.72, 8 KiB 0.57, 32 KiB 0.57-0.60).
constexpr uintptr_t kSumPrefetchBytes = 16384;

// sum_i x[i], i < n: float32 groups (v0 + v1) + (v2 + v3) of 4 vectors (two roundings per term),
// summed in float64 (half the conversions of converting every vector: 1.6x faster from L3)
double sum_wide(const float* x, int64_t n) {
  __m256d a = _mm256_setzero_pd(), b = a, c = a, d = a;
  int64_t i = 0;
  auto group = [&](int64_t at) {
    const __m256 v0 = _mm256_loadu_ps(x + at), v1 = _mm256_loadu_ps(x + at + 8);
    const __m256 v2 = _mm256_loadu_ps(x + at + 16), v3 = _mm256_loadu_ps(x + at + 24);
    return _mm256_add_ps(_mm256_add_ps(v0, v1), _mm256_add_ps(v2, v3));
  };
  for (; i + 64 <= n; i += 64) {
    for (int l = 0; l < 4; ++l)  // hints: past x's end they never fault
      _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(x + i) + kSumPrefetchBytes + 64 * l),
                   _MM_HINT_T0);
    const __m256 g0 = group(i), g1 = group(i + 32);
    a = _mm256_add_pd(a, low_pd(g0));
    b = _mm256_add_pd(b, high_pd(g0));
    c = _mm256_add_pd(c, low_pd(g1));
    d = _mm256_add_pd(d, high_pd(g1));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    a = _mm256_add_pd(a, low_pd(v));
    b = _mm256_add_pd(b, high_pd(v));
  }
  double s = hsum_pd(_mm256_add_pd(_mm256_add_pd(a, b), _mm256_add_pd(c, d)));
  for (; i < n; ++i) s += x[i];
  return s;
}

// acc[w] += x[w], w < n (acc float64)
void add_row_wide(double* acc, const float* x, int64_t n) {
  int64_t w = 0;
  for (; w + 8 <= n; w += 8) {
    const __m256 v = _mm256_loadu_ps(x + w);
    _mm256_storeu_pd(acc + w, _mm256_add_pd(_mm256_loadu_pd(acc + w), low_pd(v)));
    _mm256_storeu_pd(acc + w + 4, _mm256_add_pd(_mm256_loadu_pd(acc + w + 4), high_pd(v)));
  }
  for (; w < n; ++w) acc[w] += x[w];
}

void adaptive_avg_pool_f32(const PoolShape& s, const float* x, float* y) {
  const int64_t plane = s.D * s.H * s.W;
  if (s.OD == 1 && s.OH == 1 && s.OW == 1) {
    parallel_for(s.NC, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, plane)), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        y[p] = static_cast<float>(sum_wide(x + p * plane, plane) / static_cast<double>(plane));
    });
    return;
  }
  const int64_t rows = s.NC * s.OD * s.OH;
  const int64_t window_floats = (s.H / s.OH + 2) * (s.D / s.OD + 2) * s.W;
  parallel_for(rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, window_floats)), [&](int64_t begin, int64_t end) {
    double* acc = thread_scratch<double>(s.W, 3);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, p = r / (s.OH * s.OD);
      const int64_t d0 = adaptive_start(od, s.D, s.OD), d1 = adaptive_stop(od, s.D, s.OD);
      const int64_t h0 = adaptive_start(oh, s.H, s.OH), h1 = adaptive_stop(oh, s.H, s.OH);
      std::fill(acc, acc + s.W, 0.0);
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t h = h0; h < h1; ++h) add_row_wide(acc, x + p * plane + (d * s.H + h) * s.W, s.W);
      const int64_t rows_in = (d1 - d0) * (h1 - h0);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const int64_t w0 = adaptive_start(ow, s.W, s.OW), w1 = adaptive_stop(ow, s.W, s.OW);
        double sum = 0.0;
        for (int64_t w = w0; w < w1; ++w) sum += acc[w];
        y[r * s.OW + ow] = static_cast<float>(sum / static_cast<double>(rows_in * (w1 - w0)));
      }
    }
  });
}

}  // namespace

void add_adaptive_pool_avx2(KernelTable& t) { t.f32.adaptive_avg_pool = adaptive_avg_pool_f32; }

}  // namespace medconv
