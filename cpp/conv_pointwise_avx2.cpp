// 1x1 convolutions with few output channels per group (a segmentation network's last layer: 16-64
// channels to 1-8 classes), AVX2+FMA, float32. Each task sums a run of pixels into per-thread rows
// in L1, four input channels per sweep (each row read and written once per four channels, x's four
// planes read in sequence), then writes the rows to y, streamed where y is large. Per output: the
// bias, then one FMA per input channel in order.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "aligned.h"
#include "conv_direct_avx2.h"
#include "memory.h"
#include "parallel.h"
#include "stream_avx2.h"
#include "vecmath_avx2.h"

namespace medconv {

namespace {

constexpr int kMaxOutputs = 8;
constexpr int64_t kRowFloats = 16384 / 4;  // all OC rows of a task: 16 KiB

using avx2::tail_mask;

// acc[o][j] += sum over the channels c < nc in order of w[o][c] * x[c][j], j < n (a multiple of 8,
// or the tail masked), for o < OC; x channels ldx floats apart, w rows ldw.
template <int OC>
void sweep(float* acc, int64_t lda, const float* x, int64_t ldx, const float* w, int64_t ldw, int nc, int64_t n) {
  __m256 wv[OC][4];
  for (int o = 0; o < OC; ++o)
    for (int c = 0; c < nc; ++c) wv[o][c] = _mm256_broadcast_ss(w + o * ldw + c);
  auto step = [&](int64_t j, auto load) {
    __m256 xv[4];
    for (int c = 0; c < nc; ++c) xv[c] = load(x + c * ldx + j);
    for (int o = 0; o < OC; ++o) {
      __m256 a = _mm256_load_ps(acc + o * lda + j);
      for (int c = 0; c < nc; ++c) a = _mm256_fmadd_ps(wv[o][c], xv[c], a);
      _mm256_store_ps(acc + o * lda + j, a);
    }
  };
  const int64_t full = n / 8 * 8;
  for (int64_t j = 0; j < full; j += 8) step(j, [](const float* p) { return _mm256_loadu_ps(p); });
  if (full < n) {
    const __m256i m = tail_mask(n - full);
    step(full, [m](const float* p) { return _mm256_maskload_ps(p, m); });
  }
}

template <int OC>
void run(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  const int64_t G = s.groups, Cg = s.C / G, P = s.D * s.H * s.W;
  const int64_t chunk = std::max<int64_t>(8, kRowFloats / OC / 8 * 8);
  const int64_t chunks = (P + chunk - 1) / chunk;
  const bool stream = s.N * s.OC * P * 4 >= kStreamStoreBytes;
  parallel_for(s.N * G * chunks, 1, [&](int64_t begin, int64_t end) {
    float* acc = thread_scratch<float>(OC * chunk, 3);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t k = t % chunks, g = (t / chunks) % G, n = t / (chunks * G);
      const int64_t p0 = k * chunk, np = std::min(chunk, P - p0), padded = (np + 7) / 8 * 8;
      const float* xg = x + (n * s.C + g * Cg) * P + p0;
      const float* wg = w + g * OC * Cg;
      for (int o = 0; o < OC; ++o) std::fill(acc + o * chunk, acc + o * chunk + padded, bias ? bias[g * OC + o] : 0.0f);
      for (int64_t c = 0; c < Cg; c += 4)
        sweep<OC>(acc, chunk, xg + c * P, P, wg + c, Cg, static_cast<int>(std::min<int64_t>(4, Cg - c)), np);
      for (int o = 0; o < OC; ++o) {
        float* row = acc + o * chunk;
        if (relu)
          for (int64_t j = 0; j < padded; j += 8)  // max(0, v): NaN stays NaN
            _mm256_store_ps(row + j, _mm256_max_ps(_mm256_setzero_ps(), _mm256_load_ps(row + j)));
        float* dst = y + (n * s.OC + g * OC + o) * P + p0;
        if (stream) avx2::stream_copy(dst, row, np * 4);
        else std::copy(row, row + np, dst);
      }
    }
    if (stream) _mm_sfence();  // the streamed stores are visible before the call returns
  });
}

}  // namespace

bool conv_pointwise_applies(const ConvShape& s) {
  const int64_t OCg = s.OC / s.groups;
  const bool unit = s.KD == 1 && s.KH == 1 && s.KW == 1;
  bool plain = true;
  for (int d = 0; d < 3; ++d) plain = plain && s.stride[d] == 1 && s.pad[d] == 0;
  const bool same_size = s.OD == s.D && s.OH == s.H && s.OW == s.W;  // callers may ask for part of an output
  return unit && plain && same_size && OCg >= 1 && OCg <= kMaxOutputs;
}

void conv_pointwise_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                             bool relu) {
  switch (s.OC / s.groups) {
    case 1: return run<1>(s, x, w, bias, y, relu);
    case 2: return run<2>(s, x, w, bias, y, relu);
    case 3: return run<3>(s, x, w, bias, y, relu);
    case 4: return run<4>(s, x, w, bias, y, relu);
    case 5: return run<5>(s, x, w, bias, y, relu);
    case 6: return run<6>(s, x, w, bias, y, relu);
    case 7: return run<7>(s, x, w, bias, y, relu);
    default: return run<8>(s, x, w, bias, y, relu);
  }
}

}  // namespace medconv
