// Max and average pooling, AVX2+FMA, float32: 8 outputs of a row per vector wherever the whole
// window lies in the input along W and the W stride is 1 or 2 (2x2 s2, 3x3 s1/s2, 2x2x2 s2, ...);
// border outputs run the reference's scalar loop. Taps are visited in the reference's order
// (d, h, w), so results and indices are bitwise the reference's. Other shapes and float64 keep the
// reference entry.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "avx2_kernels.h"
#include "parallel.h"
#include "pool_window.h"
#include "stream_avx2.h"

namespace medconv {

namespace {

void (*g_max_pool_f32_base)(const PoolShape&, const float*, float*, int64_t*) = nullptr;
void (*g_avg_pool_f32_base)(const PoolShape&, const float*, float*, bool, int64_t) = nullptr;

// The 8 values p[j * S], j = 0..7 (S = 1 or 2); reads p[0 .. 7 * S] only.
template <int S> inline __m256 load_taps(const float* p);
template <> inline __m256 load_taps<1>(const float* p) { return _mm256_loadu_ps(p); }
template <> inline __m256 load_taps<2>(const float* p) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 7);      // p[0..7], p[7..14]
  const __m256 s = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 2, 0));    // p0 p2 p8 p10 | p4 p6 p12 p14
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

// Stride 2, window width 2, no dilation: both taps of 8 outputs, p[2j] and p[2j + 1], from one pair
// of loads (p[0..15]) instead of two load_taps<2>.
inline void load_tap_pair(const float* p, __m256& even, __m256& odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                                                _MM_SHUFFLE(3, 1, 2, 0)));
  odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))),
                                               _MM_SHUFFLE(3, 1, 2, 0)));
}

inline int64_t first_tap(int64_t start, int64_t dilation) {  // smallest start + k*dilation >= 0
  while (start < 0) start += dilation;
  return start;
}

// The outputs ow in [lo, hi) whose taps ow*stride - pad + k*dilation, k < kernel, all lie in [0, n).
inline void interior(int64_t n, int64_t out, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                     int64_t& lo, int64_t& hi) {
  lo = (pad + stride - 1) / stride;
  const int64_t last = n - 1 + pad - (kernel - 1) * dilation;  // ow*stride must be <= last
  hi = last < 0 ? 0 : std::min(out, last / stride + 1);
  if (hi < lo) hi = lo;
}

struct MaxRow {
  const float* xp;  // x plane: [D, H, W]
  int64_t dfirst, dend, hfirst, hend;
  bool pair;        // window width 2, no dilation along W: load_tap_pair
};

// The reference's loop for one output: the first maximum, or the last NaN, over the clipped window.
inline void max_one(const PoolShape& s, const MaxRow& r, int64_t ow, float* out, int64_t* index) {
  const int64_t w0 = ow * s.stride[2] - s.pad[2];
  const int64_t wend = std::min(w0 + (s.kernel[2] - 1) * s.dilation[2] + 1, s.W);
  const int64_t wfirst = first_tap(w0, s.dilation[2]);
  float best = -std::numeric_limits<float>::infinity();
  int64_t best_index = (r.dfirst * s.H + r.hfirst) * s.W + wfirst;
  for (int64_t d = r.dfirst; d < r.dend; d += s.dilation[0])
    for (int64_t h = r.hfirst; h < r.hend; h += s.dilation[1])
      for (int64_t w = wfirst; w < wend; w += s.dilation[2]) {
        const int64_t i = (d * s.H + h) * s.W + w;
        const float v = r.xp[i];
        if (v > best || std::isnan(v)) {
          best = v;
          best_index = i;
        }
      }
  *out = best;
  if (index) *index = best_index;
}

// best = (v > best || v != v) ? v : best, and its index
template <bool kIndex>
inline void take_max(__m256& best, __m256i& best_i, __m256 v, __m256i vi) {
  const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  best = _mm256_blendv_ps(best, v, take);
  if (kIndex) best_i = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_i), _mm256_castsi256_ps(vi), take));
}

// y[0..7] = best, and index[0..7] = best_i widened (kIndex)
template <bool kIndex>
inline void store_max(float* y, int64_t* index, __m256 best, __m256i best_i) {
  _mm256_storeu_ps(y, best);
  if (kIndex) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(index), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(best_i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(index + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(best_i, 1)));
  }
}

// y[ow0 + j] = max over the window of output ow0 + j, j = 0..7, all taps inside the input.
// xp: [D, H, W] plane; y: 8 outputs; index: 8 flat indices into the plane (or null)
template <int S, bool kIndex>
inline void max_block(const PoolShape& s, const MaxRow& r, int64_t ow0, float* y, int64_t* index) {
  const __m256i step = S == 1 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) : _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  __m256 best = _mm256_setzero_ps();
  __m256i best_i = _mm256_setzero_si256();
  bool first = true;
  // best = (v > best || v != v) ? v : best over the taps in (d, h, w) order, from the first tap
  auto tap = [&](__m256 v, int64_t at) {
    const __m256i vi = kIndex ? _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(at)), step) : step;
    if (first) {
      best = v;
      best_i = vi;
      first = false;
      return;
    }
    take_max<kIndex>(best, best_i, v, vi);
  };
  const bool pair = S == 2 && r.pair;
  for (int64_t d = r.dfirst; d < r.dend; d += s.dilation[0])
    for (int64_t h = r.hfirst; h < r.hend; h += s.dilation[1]) {
      const int64_t row = (d * s.H + h) * s.W + ow0 * S - s.pad[2];
      if (pair) {
        __m256 even, odd;
        load_tap_pair(r.xp + row, even, odd);
        tap(even, row);
        tap(odd, row + 1);
        continue;
      }
      for (int64_t k = 0; k < s.kernel[2]; ++k) {
        const int64_t at = row + k * s.dilation[2];
        tap(load_taps<S>(r.xp + at), at);
      }
    }
  store_max<kIndex>(y, index, best, best_i);
}

// Windows of KD x 2 x 2 with stride (KD, 2, 2), no padding or dilation, every window inside the
// input (2x2 s2 in 2D, 2x2x2 s2 in 3D: the pools of U-Nets): the taps of 8 outputs are the even and
// odd columns of KD x 2 input rows, visited in the reference's (d, h, w) order as max_block does,
// in a loop without its per-tap bookkeeping (1.5-2x faster).
inline bool whole_2x2_windows(const PoolShape& s) {
  const int64_t kd = s.kernel[0];
  return (kd == 1 || kd == 2) && s.stride[0] == kd && s.kernel[1] == 2 && s.kernel[2] == 2 && s.stride[1] == 2 &&
         s.stride[2] == 2 && s.pad[0] == 0 && s.pad[1] == 0 && s.pad[2] == 0 && s.dilation[0] == 1 &&
         s.dilation[1] == 1 && s.dilation[2] == 1 && s.OW >= 8 && kd * s.OD <= s.D && 2 * s.OH <= s.H &&
         2 * s.OW <= s.W;
}

// The 2x2 loops take each window row of up to kPassOutputs outputs from end to end before the next
// window row, with the partial results in an L1 buffer: the input streams by in address order (2D:
// 1 KiB of one row, then 1 KiB of the next; 3D: the same in two input depths). Reading the window's
// rows 64 bytes at a time in turn, the hardware prefetch kept up with none of them (8x64x128x128 max
// pool, 1 thread, Zen 5: 2.0 ms, 40% of it waiting on the second row's loads; 1.1-1.2 ms in passes).
// Tiles of many output rows, each input depth streamed over the whole tile, ran slower (3D 3.2 ms
// against 2.7 in benchmarks/compare.py).
constexpr int64_t kPassOutputs = 256;

// In 3D, the passes over the first input depth's rows also prefetch the second depth's, 4 KiB ahead:
// the hardware prefetch kept up with one of the two streams only (1x16x64x128x128, 1 thread, Zen 5:
// 2.5 -> 2.0-2.1 ms; 1 KiB ahead: 2.2 ms).
constexpr int64_t kDepthPrefetchFloats = 1024;

// Outputs of kStreamStoreBytes or more go out with streaming stores, in whole rows of 8-output blocks.
inline bool streams_2x2_outputs(const PoolShape& s) {
  return s.OW % 8 == 0 && s.NC * s.OD * s.OH * s.OW * static_cast<int64_t>(sizeof(float)) >= kStreamStoreBytes;
}

// The 8 outputs' taps in window row `row` (offset in the plane of the block's first tap), in the
// reference's order: even column, then odd.
template <bool kIndex>
inline void max_row_taps(const float* xp, int64_t row, __m256& best, __m256i& best_i, bool first) {
  const __m256i even_cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  __m256 even, odd;
  load_tap_pair(xp + row, even, odd);
  const __m256i ei = kIndex ? _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(row)), even_cols) : even_cols;
  if (first) {
    best = even;
    best_i = ei;
  } else {
    take_max<kIndex>(best, best_i, even, ei);
  }
  take_max<kIndex>(best, best_i, odd, _mm256_add_epi32(ei, _mm256_set1_epi32(1)));
}

// x: [NC, D, H, W], y / indices: [NC, OD, OH, OW]
template <int KD, bool kIndex>
void max_pool_2x2(const PoolShape& s, const float* x, float* y, int64_t* indices) {
  const int64_t HW = s.H * s.W;
  const bool stream = streams_2x2_outputs(s) && !kIndex;
  parallel_for(s.NC * s.OD * s.OH, 16, [&](int64_t begin, int64_t end) {
    alignas(32) float best_buf[kPassOutputs];
    alignas(32) int32_t index_buf[kPassOutputs];
    for (int64_t rr = begin; rr < end; ++rr) {
      const int64_t oh = rr % s.OH, od = (rr / s.OH) % s.OD, p = rr / (s.OH * s.OD);
      const int64_t first = (od * KD * s.H + 2 * oh) * s.W;  // the window's first tap in the plane
      const float* xp = x + p * s.D * HW;
      float* yr = y + rr * s.OW;
      int64_t* ir = kIndex ? indices + rr * s.OW : nullptr;
      for (int64_t c0 = 0; c0 + 8 <= s.OW; c0 += kPassOutputs) {
        const int64_t blocks = std::min(kPassOutputs, s.OW - c0) / 8;
        avx2::VectorStream run(yr + c0);
        for (int t = 0; t < 2 * KD; ++t) {  // the window rows (d, h), in order
          const int64_t row = first + (t / 2) * HW + (t % 2) * s.W + 2 * c0;
          for (int64_t j = 0; j < blocks; ++j) {
            if (KD == 2 && t < 2) {  // a hint: it may lie past the input, and never faults
              const uintptr_t ahead = reinterpret_cast<uintptr_t>(xp + row + 16 * j + HW) + kDepthPrefetchFloats * 4;
              _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
            }
            __m256 best;
            __m256i best_i;
            if (t > 0) {
              best = _mm256_load_ps(best_buf + 8 * j);
              if (kIndex) best_i = _mm256_load_si256(reinterpret_cast<const __m256i*>(index_buf + 8 * j));
            }
            max_row_taps<kIndex>(xp, row + 16 * j, best, best_i, t == 0);
            if (t + 1 < 2 * KD) {
              _mm256_store_ps(best_buf + 8 * j, best);
              if (kIndex) _mm256_store_si256(reinterpret_cast<__m256i*>(index_buf + 8 * j), best_i);
            } else if (stream) {
              run.put(best);
            } else {
              store_max<kIndex>(yr + c0 + 8 * j, kIndex ? ir + c0 + 8 * j : nullptr, best, best_i);
            }
          }
        }
        if (stream) run.finish();
      }
      if (s.OW % 8) {  // the last 8 outputs, overlapping the block before: the same values again
        const int64_t ow0 = s.OW - 8;
        __m256 best;
        __m256i best_i;
        for (int t = 0; t < 2 * KD; ++t)
          max_row_taps<kIndex>(xp, first + (t / 2) * HW + (t % 2) * s.W + 2 * ow0, best, best_i, t == 0);
        store_max<kIndex>(yr + ow0, kIndex ? ir + ow0 : nullptr, best, best_i);
      }
    }
    if (stream) _mm_sfence();  // the streamed stores are visible before the call returns
  });
}

// y = (0 + the taps in (d, h, w) order) / (4 KD), as avg_pool_rows adds them
template <int KD>
void avg_pool_2x2(const PoolShape& s, const float* x, float* y, int64_t divisor) {
  const int64_t HW = s.H * s.W;
  const __m256 div = _mm256_set1_ps(static_cast<float>(divisor > 0 ? divisor : 4 * KD));
  const bool stream = streams_2x2_outputs(s);
  const auto add_row = [](const float* p, __m256 acc) {
    __m256 even, odd;
    load_tap_pair(p, even, odd);
    return _mm256_add_ps(_mm256_add_ps(acc, even), odd);
  };
  parallel_for(s.NC * s.OD * s.OH, 16, [&](int64_t begin, int64_t end) {
    alignas(32) float sum_buf[kPassOutputs];
    for (int64_t rr = begin; rr < end; ++rr) {
      const int64_t oh = rr % s.OH, od = (rr / s.OH) % s.OD, p = rr / (s.OH * s.OD);
      const float* xr = x + p * s.D * HW + (od * KD * s.H + 2 * oh) * s.W;
      float* yr = y + rr * s.OW;
      for (int64_t c0 = 0; c0 + 8 <= s.OW; c0 += kPassOutputs) {
        const int64_t blocks = std::min(kPassOutputs, s.OW - c0) / 8;
        avx2::VectorStream run(yr + c0);
        for (int t = 0; t < 2 * KD; ++t) {
          const float* row = xr + (t / 2) * HW + (t % 2) * s.W + 2 * c0;
          for (int64_t j = 0; j < blocks; ++j) {
            const __m256 acc = add_row(row + 16 * j, t > 0 ? _mm256_load_ps(sum_buf + 8 * j) : _mm256_setzero_ps());
            if (t + 1 < 2 * KD) _mm256_store_ps(sum_buf + 8 * j, acc);
            else if (stream) run.put(_mm256_div_ps(acc, div));
            else _mm256_storeu_ps(yr + c0 + 8 * j, _mm256_div_ps(acc, div));
          }
        }
        if (stream) run.finish();
      }
      if (s.OW % 8) {  // the last 8 outputs, overlapping the block before: the same values again
        const int64_t ow0 = s.OW - 8;
        __m256 acc = _mm256_setzero_ps();
        for (int t = 0; t < 2 * KD; ++t) acc = add_row(xr + (t / 2) * HW + (t % 2) * s.W + 2 * ow0, acc);
        _mm256_storeu_ps(yr + ow0, _mm256_div_ps(acc, div));
      }
    }
    if (stream) _mm_sfence();
  });
}

// x: [NC, D, H, W], y / indices: [NC, OD, OH, OW]
template <int S, bool kIndex>
void max_pool_rows(const PoolShape& s, const float* x, float* y, int64_t* indices) {
  int64_t lo, hi;
  interior(s.W, s.OW, s.kernel[2], S, s.pad[2], s.dilation[2], lo, hi);
  const bool pair = s.kernel[2] == 2 && s.dilation[2] == 1;
  parallel_for(s.NC * s.OD * s.OH, 16, [&](int64_t begin, int64_t end) {
    for (int64_t rr = begin; rr < end; ++rr) {
      const int64_t oh = rr % s.OH, od = (rr / s.OH) % s.OD, p = rr / (s.OH * s.OD);
      const int64_t d0 = od * s.stride[0] - s.pad[0], h0 = oh * s.stride[1] - s.pad[1];
      MaxRow r;
      r.pair = pair;
      r.xp = x + p * s.D * s.H * s.W;
      r.dend = std::min(d0 + (s.kernel[0] - 1) * s.dilation[0] + 1, s.D);
      r.hend = std::min(h0 + (s.kernel[1] - 1) * s.dilation[1] + 1, s.H);
      r.dfirst = first_tap(d0, s.dilation[0]);
      r.hfirst = first_tap(h0, s.dilation[1]);
      float* yr = y + rr * s.OW;
      int64_t* ir = kIndex ? indices + rr * s.OW : nullptr;
      const bool vector = r.dfirst < r.dend && r.hfirst < r.hend && hi - lo >= 8;
      const int64_t vlo = vector ? lo : s.OW, vhi = vector ? hi : s.OW;
      for (int64_t ow = 0; ow < vlo; ++ow) max_one(s, r, ow, yr + ow, kIndex ? ir + ow : nullptr);
      for (int64_t ow = vlo; ow < vhi; ow += 8) {
        const int64_t ow0 = std::min(ow, vhi - 8);  // the last block overlaps the one before: same values
        max_block<S, kIndex>(s, r, ow0, yr + ow0, kIndex ? ir + ow0 : nullptr);
      }
      for (int64_t ow = vhi; ow < s.OW; ++ow) max_one(s, r, ow, yr + ow, kIndex ? ir + ow : nullptr);
    }
  });
}

void max_pool_f32(const PoolShape& s, const float* x, float* y, int64_t* indices) {
  const bool fits = s.D * s.H * s.W <= static_cast<int64_t>(std::numeric_limits<int32_t>::max()) - 64;
  if (s.OW < 8 || !fits || (s.stride[2] != 1 && s.stride[2] != 2)) {
    g_max_pool_f32_base(s, x, y, indices);
    return;
  }
  if (whole_2x2_windows(s)) {
    if (s.kernel[0] == 1) indices ? max_pool_2x2<1, true>(s, x, y, indices) : max_pool_2x2<1, false>(s, x, y, nullptr);
    else indices ? max_pool_2x2<2, true>(s, x, y, indices) : max_pool_2x2<2, false>(s, x, y, nullptr);
    return;
  }
  if (s.stride[2] == 1) {
    if (indices) max_pool_rows<1, true>(s, x, y, indices);
    else max_pool_rows<1, false>(s, x, y, nullptr);
  } else {
    if (indices) max_pool_rows<2, true>(s, x, y, indices);
    else max_pool_rows<2, false>(s, x, y, nullptr);
  }
}

// The reference's loop for one output.
inline float avg_one(const PoolShape& s, const float* xp, const AvgRows& r, int64_t ow, bool count_include_pad,
                     int64_t divisor) {
  const AvgCols c = avg_cols(s, r, ow, count_include_pad, divisor);
  if (r.empty() || c.w0 >= c.w1) return 0.0f;
  float sum = 0;
  for (int64_t d = r.d0; d < r.d1; ++d)
    for (int64_t h = r.h0; h < r.h1; ++h)
      for (int64_t w = c.w0; w < c.w1; ++w) sum += xp[(d * s.H + h) * s.W + w];
  return sum / static_cast<float>(c.count);
}

// x: [NC, D, H, W], y: [NC, OD, OH, OW]
template <int S>
void avg_pool_rows(const PoolShape& s, const float* x, float* y, bool count_include_pad, int64_t divisor) {
  int64_t lo, hi;
  interior(s.W, s.OW, s.kernel[2], S, s.pad[2], 1, lo, hi);
  const bool pair = S == 2 && s.kernel[2] == 2;
  parallel_for(s.NC * s.OD * s.OH, 16, [&](int64_t begin, int64_t end) {
    for (int64_t rr = begin; rr < end; ++rr) {
      const int64_t oh = rr % s.OH, od = (rr / s.OH) % s.OD, p = rr / (s.OH * s.OD);
      const float* xp = x + p * s.D * s.H * s.W;
      const AvgRows r = avg_rows(s, od, oh);
      float* yr = y + rr * s.OW;
      const bool vector = r.d0 < r.d1 && r.h0 < r.h1 && hi - lo >= 8;
      const int64_t vlo = vector ? lo : s.OW, vhi = vector ? hi : s.OW;
      for (int64_t ow = 0; ow < vlo; ++ow) yr[ow] = avg_one(s, xp, r, ow, count_include_pad, divisor);
      if (vector) {
        // inside, the window is whole along W: the divisor is the same for the row's interior
        const int64_t count = divisor > 0 ? divisor
                              : count_include_pad ? r.dh_padded * s.kernel[2]
                                                  : (r.d1 - r.d0) * (r.h1 - r.h0) * s.kernel[2];
        const __m256 div = _mm256_set1_ps(static_cast<float>(count));

        for (int64_t ow = vlo; ow < vhi; ow += 8) {
          const int64_t ow0 = std::min(ow, vhi - 8);  // the last block overlaps the one before: same values
          // y[ow0 + j] = (sum over d, h, k in order of x[d, h, (ow0 + j) * S - pad + k]) / count
          __m256 acc = _mm256_setzero_ps();
          for (int64_t d = r.d0; d < r.d1; ++d)
            for (int64_t h = r.h0; h < r.h1; ++h) {
              const float* row = xp + (d * s.H + h) * s.W + ow0 * S - s.pad[2];
              if (pair) {
                __m256 even, odd;
                load_tap_pair(row, even, odd);
                acc = _mm256_add_ps(_mm256_add_ps(acc, even), odd);
                continue;
              }
              for (int64_t k = 0; k < s.kernel[2]; ++k) acc = _mm256_add_ps(acc, load_taps<S>(row + k));
            }
          _mm256_storeu_ps(yr + ow0, _mm256_div_ps(acc, div));
        }
      }
      for (int64_t ow = vhi; ow < s.OW; ++ow) yr[ow] = avg_one(s, xp, r, ow, count_include_pad, divisor);
    }
  });
}

void avg_pool_f32(const PoolShape& s, const float* x, float* y, bool count_include_pad, int64_t divisor) {
  if (s.OW < 8 || (s.stride[2] != 1 && s.stride[2] != 2)) {
    g_avg_pool_f32_base(s, x, y, count_include_pad, divisor);
    return;
  }
  if (whole_2x2_windows(s)) {  // no padding: count_include_pad changes nothing
    if (s.kernel[0] == 1) avg_pool_2x2<1>(s, x, y, divisor);
    else avg_pool_2x2<2>(s, x, y, divisor);
    return;
  }
  if (s.stride[2] == 1) avg_pool_rows<1>(s, x, y, count_include_pad, divisor);
  else avg_pool_rows<2>(s, x, y, count_include_pad, divisor);
}

}  // namespace

void add_pool_avx2(KernelTable& t) {
  // The fallbacks are the entries this table had (the reference); set once, before any use.
  if (!g_max_pool_f32_base) g_max_pool_f32_base = t.f32.max_pool;
  if (!g_avg_pool_f32_base) g_avg_pool_f32_base = t.f32.avg_pool;
  t.f32.max_pool = max_pool_f32;
  t.f32.avg_pool = avg_pool_f32;
}

}  // namespace medconv
