#include "conv_direct_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "aligned.h"
#include "avx512_kernels.h"
#include "parallel.h"
#include "range.h"

namespace medconv {
namespace {

struct Block {
  int64_t oc0, od, oh0;  // OCB output channels from oc0, RB output rows from oh0 (stride_h 1 if RB > 1)
};

// OCB output channels x RB output rows of one (image, group), accumulated in y itself one
// (input channel, kd) plane at a time: each pass streams a few input rows while the outputs stay
// in L1, however many channels the group has. Per output the taps are summed in (ic, kd, kh, kw)
// order with one FMA each, so the bits do not depend on blocking or threads.
// y[oc, od, oh, ow] = bias[oc] + sum w[oc, ic, kd, kh, kw] * x[ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow - pw + kw*dw]
// xg: [Cg, D, H, W] (one image, one group), w: [OC, Cg, KD, KH, KW], y: [OC, OD, OH, OW] (one image)
template <int OCB, int RB>
void direct_block(const ConvShape& s, const float* xg, const float* w, const float* bias, float* y, Block blk,
                  bool relu, Range interior) {
  const int64_t Cg = s.C / s.groups, kvol = s.KD * s.KH * s.KW;
  const int64_t dh = s.dilation[1], dw = s.dilation[2];
  float* out[OCB][RB];
  const float* wt[OCB];
  int64_t ih0[RB];  // the input row of tap kh = 0 for each output row
  for (int o = 0; o < OCB; ++o) {
    wt[o] = w + (blk.oc0 + o) * Cg * kvol;
    for (int r = 0; r < RB; ++r) out[o][r] = y + (((blk.oc0 + o) * s.OD + blk.od) * s.OH + blk.oh0 + r) * s.OW;
  }
  for (int r = 0; r < RB; ++r) ih0[r] = (blk.oh0 + r) * s.stride[1] - s.pad[1];
  // The valid kd range: passes run over (ic, kd in it); none valid leaves bias alone.
  int64_t kd_lo = s.KD, kd_hi = 0;
  for (int64_t kd = 0; kd < s.KD; ++kd) {
    const int64_t id = blk.od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
    if (id >= 0 && id < s.D) kd_lo = std::min(kd_lo, kd), kd_hi = kd + 1;
  }
  const float* zero_row = thread_zeros(s.W + 32);  // rows above/below the input: no branches, acc in registers
  const __m256 zero = _mm256_setzero_ps();
  auto finish = [&](float v) { return relu ? (v > 0.0f ? v : (v != v ? v : 0.0f)) : v; };
  if (kd_lo >= kd_hi) {
    for (int o = 0; o < OCB; ++o)
      for (int r = 0; r < RB; ++r)
        for (int64_t ow = 0; ow < s.OW; ++ow) out[o][r][ow] = finish(bias ? bias[blk.oc0 + o] : 0.0f);
    return;
  }
  for (int64_t ic = 0; ic < Cg; ++ic) {
    for (int64_t kd = kd_lo; kd < kd_hi; ++kd) {
      const int64_t id = blk.od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
      if (id < 0 || id >= s.D) continue;
      const bool first = ic == 0 && kd == kd_lo;
      bool last = ic == Cg - 1;
      for (int64_t k2 = kd + 1; k2 < kd_hi && last; ++k2) {
        const int64_t i2 = blk.od * s.stride[0] - s.pad[0] + k2 * s.dilation[0];
        if (i2 >= 0 && i2 < s.D) last = false;
      }
      const float* plane = xg + (ic * s.D + id) * s.H * s.W;
      const int64_t woff = (ic * s.KD + kd) * s.KH * s.KW;
      // 16 outputs from ow; the last block of a row may hold only `valid` (< 16) interior outputs:
      // then loads and stores are masked to them (masked loads never fault outside the array).
      auto vector_block = [&](int64_t ow, auto masked, int64_t valid) {
        __m256i m0 = _mm256_set1_epi32(-1), m1 = m0;
        if constexpr (decltype(masked)::value) {
          const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
          const __m256i n = _mm256_set1_epi32(static_cast<int>(valid));
          m0 = _mm256_cmpgt_epi32(n, lane);
          m1 = _mm256_cmpgt_epi32(n, _mm256_add_epi32(lane, _mm256_set1_epi32(8)));
        }
        auto load = [&](const float* p, const __m256i& m) {
          if constexpr (decltype(masked)::value) return _mm256_maskload_ps(p, m);
          else return _mm256_loadu_ps(p);
        };
        __m256 acc[OCB][RB][2];
        for (int o = 0; o < OCB; ++o)
          for (int r = 0; r < RB; ++r) {
            if (first) {
              acc[o][r][0] = acc[o][r][1] = _mm256_set1_ps(bias ? bias[blk.oc0 + o] : 0.0f);
            } else {
              acc[o][r][0] = load(out[o][r] + ow, m0);
              acc[o][r][1] = load(out[o][r] + ow + 8, m1);
            }
          }
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const float* rows[RB];
          bool any = false;
          for (int r = 0; r < RB; ++r) {
            const int64_t ih = ih0[r] + kh * dh;
            const bool inside = ih >= 0 && ih < s.H;
            any |= inside;
            rows[r] = (inside ? plane + ih * s.W : zero_row) + ow - s.pad[2];
          }
          if (!any) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            __m256 v[RB][2];
            for (int r = 0; r < RB; ++r) {
              v[r][0] = load(rows[r] + kw * dw, m0);
              v[r][1] = load(rows[r] + kw * dw + 8, m1);
            }
            for (int o = 0; o < OCB; ++o) {
              const __m256 wv = _mm256_broadcast_ss(wt[o] + woff + kh * s.KW + kw);
              for (int r = 0; r < RB; ++r) {
                acc[o][r][0] = _mm256_fmadd_ps(wv, v[r][0], acc[o][r][0]);
                acc[o][r][1] = _mm256_fmadd_ps(wv, v[r][1], acc[o][r][1]);
              }
            }
          }
        }
        for (int o = 0; o < OCB; ++o)
          for (int r = 0; r < RB; ++r) {
            if (last && relu) {  // max_ps returns its second operand on NaN: NaN stays NaN
              acc[o][r][0] = _mm256_max_ps(zero, acc[o][r][0]);
              acc[o][r][1] = _mm256_max_ps(zero, acc[o][r][1]);
            }
            if constexpr (decltype(masked)::value) {
              _mm256_maskstore_ps(out[o][r] + ow, m0, acc[o][r][0]);
              _mm256_maskstore_ps(out[o][r] + ow + 8, m1, acc[o][r][1]);
            } else {
              _mm256_storeu_ps(out[o][r] + ow, acc[o][r][0]);
              _mm256_storeu_ps(out[o][r] + ow + 8, acc[o][r][1]);
            }
          }
      };
      auto scalar_at = [&](int64_t ow) {
        for (int o = 0; o < OCB; ++o)
          for (int r = 0; r < RB; ++r) {
            float acc = first ? (bias ? bias[blk.oc0 + o] : 0.0f) : out[o][r][ow];
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const int64_t ih = ih0[r] + kh * dh;
              if (ih < 0 || ih >= s.H) continue;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t iw = ow - s.pad[2] + kw * dw;
                if (iw < 0 || iw >= s.W) continue;
                acc = std::fma(wt[o][woff + kh * s.KW + kw], plane[ih * s.W + iw], acc);
              }
            }
            out[o][r][ow] = last ? finish(acc) : acc;
          }
      };
      int64_t ow = 0;
      for (; ow < interior.begin; ++ow) scalar_at(ow);
      for (; ow + 16 <= interior.end; ow += 16) vector_block(ow, std::false_type{}, 16);
      if (ow < interior.end) {
        vector_block(ow, std::true_type{}, interior.end - ow);
        ow = interior.end;
      }
      for (; ow < s.OW; ++ow) scalar_at(ow);
    }
  }
}

template <int OCB, int RB>
void run_blocks(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                Range interior) {
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t oc_blocks = (OCg + OCB - 1) / OCB, row_blocks = (s.OH + RB - 1) / RB;
  const int64_t tasks = s.N * G * oc_blocks * s.OD * row_blocks;
  parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t rb = t % row_blocks, od = (t / row_blocks) % s.OD;
      const int64_t ob = (t / (row_blocks * s.OD)) % oc_blocks, g = (t / (row_blocks * s.OD * oc_blocks)) % G;
      const int64_t n = t / (row_blocks * s.OD * oc_blocks * G);
      const float* xg = x + (n * s.C + g * Cg) * s.D * s.H * s.W;
      float* yn = y + n * s.OC * s.OD * s.OH * s.OW;
      const Block blk{g * OCg + ob * OCB, od, rb * RB};
      const int oc_left = static_cast<int>(std::min<int64_t>(OCB, g * OCg + OCg - blk.oc0));
      const int rows_left = static_cast<int>(std::min<int64_t>(RB, s.OH - blk.oh0));
      if (oc_left == OCB && rows_left == RB) {
        direct_block<OCB, RB>(s, xg, w, bias, yn, blk, relu, interior);
        continue;
      }
      // ragged edges of the channel or row range: one channel and one row at a time
      for (int o = 0; o < oc_left; ++o)
        for (int r = 0; r < rows_left; ++r)
          direct_block<1, 1>(s, xg, w, bias, yn, Block{blk.oc0 + o, od, blk.oh0 + r}, relu, interior);
    }
  });
}

}  // namespace

void conv_direct_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                          bool relu, Isa isa) {
  if (conv_pointwise_applies(s)) return conv_pointwise_avx2_f32(s, x, w, bias, y, relu);
  if (isa == Isa::avx512 && conv_depthwise3x3_avx512_f32(s, x, w, bias, y, relu)) return;
  if (conv_rows_avx2_f32(s, x, w, bias, y, relu)) return;
  if (conv_tiles1d_applies(s)) return conv_tiles1d_avx2_f32(s, x, w, bias, y, relu, isa);
  if (conv_phase_rows_applies(s)) return conv_phase_rows_avx2_f32(s, x, w, bias, y, relu);
  // Outputs whose taps all fall inside the row: ow - pw >= 0 and ow - pw + (KW-1)*dw <= W - 1.
  Range interior;
  interior.begin = std::min(s.OW, s.pad[2]);
  interior.end = std::max(interior.begin, std::min(s.OW, s.W - 1 + s.pad[2] - (s.KW - 1) * s.dilation[2] + 1));
  const int64_t OCg = s.OC / s.groups;
  // One output channel (single-channel images, depthwise): rows in blocks of 4 share input rows.
  if (OCg == 1 && s.stride[1] == 1) run_blocks<1, 4>(s, x, w, bias, y, relu, interior);
  else if (OCg <= 2 && s.stride[1] == 1) run_blocks<2, 2>(s, x, w, bias, y, relu, interior);
  else run_blocks<4, 1>(s, x, w, bias, y, relu, interior);
}

}  // namespace medconv
