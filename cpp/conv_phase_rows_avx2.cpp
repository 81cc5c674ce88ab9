// Direct convolution with one input channel per group (depthwise, single-channel images) and a
// stride along W, AVX2+FMA, float32, where the other direct kernels need W unstrided and the
// implicit GEMM runs each group as a one-row GEMM (a 3x3 stride-2 depthwise conv at 1 GFLOP/s).
// Each input row a tap reads is split into its stride phases in L1 (zero-padded), so that the 8
// outputs of a vector read 8 consecutive floats at every tap. Per output: the bias, then one FMA
// per tap in (kd, kh, kw) order, taps in the padding multiplying zeros (as torch's).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "aligned.h"
#include "conv_direct_avx2.h"
#include "parallel.h"
#include "phase_rows_avx2.h"
#include "vecmath_avx2.h"

namespace medconv {

namespace {

struct PhaseLayout {
  int64_t S, reach, len;  // stride along W, phase-row floats a tap may skip, floats per phase row
};

PhaseLayout phase_layout(const ConvShape& s) {
  PhaseLayout L;
  L.S = s.stride[2];
  L.reach = (s.KW - 1) * s.dilation[2] / L.S;
  L.len = (s.OW + 31) / 32 * 32 + L.reach + 8;  // whole runs of 4 vectors
  return L;
}

}  // namespace

bool conv_phase_rows_applies(const ConvShape& s) {
  // few outputs per group: with many (a grayscale 7x7 stride-2 stem, 64 outputs) the GEMM's tiles
  // reuse each input 6 times and win (2.4x)
  return s.C == s.groups && s.OC / s.groups <= 4 && s.stride[2] >= 2 && s.stride[2] <= 4 && s.OW >= 8;
}

void conv_phase_rows_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                              bool relu) {
  const PhaseLayout L = phase_layout(s);
  const int64_t G = s.groups, OCg = s.OC / G, taps_per_row = s.KW;
  const int64_t rows_per_plane = s.KD * s.KH;
  const int64_t full = s.OW / 8 * 8;
  const __m256i tail = avx2::tail_mask(s.OW - full);
  std::vector<int64_t> offset(s.KW);  // tap kw: its phase row and column
  for (int64_t kw = 0; kw < s.KW; ++kw) {
    const int64_t q = kw * s.dilation[2];
    offset[kw] = phase_tap_offset(q, L.S, L.len);
  }
  const int64_t row_floats = L.S * L.len;
  parallel_for(s.N * G * s.OD, 1, [&](int64_t begin, int64_t end) {
    // every row of the KD input planes of one output plane, split; rows outside the input read zeros
    float* split = thread_scratch<float>(s.KD * s.H * row_floats, 5);
    const float* zero_row = thread_zeros(row_floats);
    std::vector<const float*> rows(rows_per_plane);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t od = t % s.OD, g = (t / s.OD) % G, n = t / (s.OD * G);
      const float* xp = x + (n * s.C + g) * s.D * s.H * s.W;
      for (int64_t kd = 0; kd < s.KD; ++kd) {
        const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
        if (id >= 0 && id < s.D)
          for (int64_t ih = 0; ih < s.H; ++ih)
            split_row_phases(xp + (id * s.H + ih) * s.W, s.W, -s.pad[2], L.S, L.len,
                             split + (kd * s.H + ih) * row_floats);
      }
      for (int64_t oh = 0; oh < s.OH; ++oh) {
        // the split rows the taps of output row (od, oh) read, in (kd, kh) order
        for (int64_t kd = 0; kd < s.KD; ++kd)
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
            const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
            const bool inside = id >= 0 && id < s.D && ih >= 0 && ih < s.H;
            rows[kd * s.KH + kh] = inside ? split + (kd * s.H + ih) * row_floats : zero_row;
          }
        for (int64_t o = 0; o < OCg; ++o) {
          const int64_t oc = g * OCg + o;
          const float* wo = w + oc * rows_per_plane * taps_per_row;
          const __m256 b = _mm256_set1_ps(bias ? bias[oc] : 0.0f);
          float* yr = y + ((n * s.OC + oc) * s.OD + od) * s.OH * s.OW + oh * s.OW;
          for (int64_t ow = 0; ow < s.OW; ow += 32) {  // 4 vectors: 4 sums in flight
            __m256 acc[4] = {b, b, b, b};
            for (int64_t r = 0; r < rows_per_plane; ++r) {
              const float* ph = rows[r] + ow;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const __m256 tap = _mm256_set1_ps(wo[r * taps_per_row + kw]);
                const float* src = ph + offset[kw];
                for (int v = 0; v < 4; ++v) acc[v] = _mm256_fmadd_ps(tap, _mm256_loadu_ps(src + 8 * v), acc[v]);
              }
            }
            for (int v = 0; v < 4 && ow + 8 * v < s.OW; ++v) {
              if (relu) acc[v] = _mm256_max_ps(_mm256_setzero_ps(), acc[v]);  // NaN stays NaN
              if (ow + 8 * v < full) _mm256_storeu_ps(yr + ow + 8 * v, acc[v]);
              else _mm256_maskstore_ps(yr + ow + 8 * v, tail, acc[v]);
            }
          }
        }
      }
    }
  });
}

}  // namespace medconv
