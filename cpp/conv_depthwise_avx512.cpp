// 3x3 stride-1 "same" convolutions of one input and one output channel per group (depthwise convs,
// single-channel image filters) on AVX-512F: 16 outputs a vector, kRows output rows of one channel
// at a time with the 9 taps in registers, each input row loaded once per column shift for all the
// output rows it feeds. The sums are conv_rows_avx2.cpp's, in its order (from the bias, the taps in
// (kh, kw) order, one FMA each, zeros in the padding multiplied too): the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "avx512_kernels.h"
#include "memory.h"
#include "parallel.h"

namespace medconv {
namespace {

constexpr int kRows = 8;  // output rows a block: 8 accumulators, 9 taps and the loaded vectors fit 32 registers

// The input columns ow - 1 + kw .. ow + 14 + kw of one row (zero outside [0, W)); masked-off lanes
// never fault.
template <int kKw>
inline __m512 load_shifted(const float* row, int64_t ow, int64_t W) {
  if (kKw == 0 && ow == 0) return _mm512_maskz_loadu_ps(static_cast<__mmask16>(0xFFFE), row - 1);
  if (kKw == 2 && ow + 16 == W) return _mm512_maskz_loadu_ps(static_cast<__mmask16>(0x7FFF), row + ow + 1);
  return _mm512_loadu_ps(row + ow - 1 + kKw);
}

// kRows output rows from oh0 of one plane, 16 columns from ow; rows[i] is input row oh0 - 1 + i or
// null (outside the plane: zeros).
inline void depthwise_block(const float* const (&rows)[kRows + 2], const __m512 (&taps)[9], __m512 bias, int64_t ow,
                            int64_t W, __m512 (&acc)[kRows]) {
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) acc[r] = bias;
#pragma GCC unroll 10
  for (int i = 0; i < kRows + 2; ++i) {
    __m512 v[3];
    if (rows[i]) {
      v[0] = load_shifted<0>(rows[i], ow, W);
      v[1] = load_shifted<1>(rows[i], ow, W);
      v[2] = load_shifted<2>(rows[i], ow, W);
    } else {
      v[0] = v[1] = v[2] = _mm512_setzero_ps();
    }
#pragma GCC unroll 3
    for (int kw = 0; kw < 3; ++kw)
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        const int kh = i - r;
        if (kh >= 0 && kh < 3) acc[r] = _mm512_fmadd_ps(taps[kh * 3 + kw], v[kw], acc[r]);
      }
  }
}

}  // namespace

bool conv_depthwise3x3_avx512_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                                  bool relu) {
  const bool shape = s.KD == 1 && s.KH == 3 && s.KW == 3 && s.C == s.groups && s.OC == s.groups &&
                     s.stride[0] == 1 && s.stride[1] == 1 && s.stride[2] == 1 && s.dilation[1] == 1 &&
                     s.dilation[2] == 1 && s.pad[0] == 0 && s.pad[1] == 1 && s.pad[2] == 1 && s.OD == s.D &&
                     s.OH == s.H && s.OW == s.W && s.W % 16 == 0 && s.W >= 16;
  if (!shape) return false;
  const int64_t plane = s.H * s.W, planes = s.N * s.C * s.D;
  // A large output is streamed (memory.h): whole 64-byte lines, so y must start on one.
  const bool stream = planes * plane * static_cast<int64_t>(sizeof(float)) >= kStreamStoreBytes;
  if (stream && (reinterpret_cast<uintptr_t>(y) & 63) != 0) return false;
  const int64_t row_blocks = (s.H + kRows - 1) / kRows;
  // Tasks: a plane and a run of its row blocks; enough of them to balance the threads.
  const int64_t per_task = planes >= 64 ? row_blocks : std::max<int64_t>(1, row_blocks * planes / 64);
  const int64_t chunks = (row_blocks + per_task - 1) / per_task;
  const __m512 zero = _mm512_setzero_ps();
  parallel_for(planes * chunks, 1, [&](int64_t begin, int64_t end) {
    float spare[kRows][16];  // the outputs of rows past H
    for (int64_t t = begin; t < end; ++t) {
      const int64_t p = t / chunks, chunk = t % chunks, c = p / s.D % s.C;
      const float* xp = x + p * plane;
      float* yp = y + p * plane;
      __m512 taps[9];
      for (int k = 0; k < 9; ++k) taps[k] = _mm512_set1_ps(w[c * 9 + k]);
      const __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
      const int64_t rb_end = std::min(row_blocks, (chunk + 1) * per_task);
      for (int64_t rb = chunk * per_task; rb < rb_end; ++rb) {
        const int64_t oh0 = rb * kRows;
        const float* rows[kRows + 2];
        for (int i = 0; i < kRows + 2; ++i) {
          const int64_t ih = oh0 - 1 + i;
          rows[i] = ih >= 0 && ih < s.H ? xp + ih * s.W : nullptr;
        }
        for (int64_t ow = 0; ow < s.W; ow += 16) {
          // The next block's new input rows, past this plane the next one's (hints: they never fault).
          // S7 (8x128x64x64), 2 threads, Zen 5: 0.425 -> 0.40 ms.
          for (int r = 0; r < kRows; ++r) {
            const uintptr_t at = reinterpret_cast<uintptr_t>(xp) + ((oh0 + kRows + 1 + r) * s.W + ow) * 4;
            _mm_prefetch(reinterpret_cast<const char*>(at), _MM_HINT_T0);
          }
          __m512 acc[kRows];
          depthwise_block(rows, taps, b, ow, s.W, acc);
#pragma GCC unroll 8
          for (int r = 0; r < kRows; ++r) {
            __m512 v = acc[r];
            if (relu) v = _mm512_mask_max_ps(v, 0xFFFF, zero, v);  // max(0, v): NaN stays NaN
            if (oh0 + r >= s.H) _mm512_storeu_ps(spare[r], v);
            else if (stream) _mm512_stream_ps(yp + (oh0 + r) * s.W + ow, v);
            else _mm512_storeu_ps(yp + (oh0 + r) * s.W + ow, v);
          }
        }
      }
    }
    if (stream) _mm_sfence();  // the streamed stores are visible before the call returns
  });
  return true;
}

}  // namespace medconv
