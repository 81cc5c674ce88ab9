// Convolution, AVX2+FMA, float32: implicit GEMM (im2col columns packed straight from the input)
// for channel-rich convs, and a register-blocked direct kernel for few input channels per group
// (single-channel images, first layers, depthwise, 3D CT). float64 stays on the reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "aligned.h"
#include "avx2_kernels.h"
#include "conv_plan.h"
#include "gemm_avx2.h"
#include "parallel.h"
#include "range.h"
#include "ref_kernels.h"
#include "winograd_avx2.h"

namespace medconv {
namespace {

using gemm::NR;

// Fills Bp[panel][k][NR] with B[k, j] = x[ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// for k = ((ic*KD + kd)*KH + kh)*KW + kw in [pc, pc + kc) and j = (od*OH + oh)*OW + ow in [jc, jc + nc).
// xg: [Cg, D, H, W] (one image, one group)
void pack_conv_columns(const ConvShape& s, const float* xg, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                       float* Bp) {
  const int64_t plane = s.D * s.H * s.W;
  const bool pointwise = s.KD * s.KH * s.KW == 1 && s.stride[0] == 1 && s.stride[1] == 1 && s.stride[2] == 1 &&
                         s.pad[0] == 0 && s.pad[1] == 0 && s.pad[2] == 0 && s.OD == s.D && s.OH == s.H && s.OW == s.W;
  int64_t cid[NR], cih[NR], ciw[NR];  // the top-left tap of each column of the panel
  for (int64_t p0 = 0; p0 < nc; p0 += NR) {
    float* dst = Bp + (p0 / NR) * kc * NR;
    const int64_t cols = std::min<int64_t>(NR, nc - p0);
    const int64_t j0 = jc + p0;
    if (pointwise) {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = xg + (pc + k) * plane + j0;
        float* d = dst + k * NR;
        if (cols == NR) {
          _mm256_store_ps(d, _mm256_loadu_ps(src));
          _mm256_store_ps(d + 8, _mm256_loadu_ps(src + 8));
        } else {
          for (int64_t t = 0; t < NR; ++t) d[t] = t < cols ? src[t] : 0.0f;
        }
      }
      continue;
    }
    for (int64_t t = 0; t < NR; ++t) {
      const int64_t j = j0 + std::min(t, cols - 1);
      const int64_t ow = j % s.OW, oh = (j / s.OW) % s.OH, od = j / (s.OW * s.OH);
      cid[t] = od * s.stride[0] - s.pad[0];
      cih[t] = oh * s.stride[1] - s.pad[1];
      ciw[t] = ow * s.stride[2] - s.pad[2];
    }
    // All columns in one output row: they share (id, ih), and iw advances by the stride.
    const bool one_row = cols == NR && cid[0] == cid[NR - 1] && cih[0] == cih[NR - 1] && ciw[NR - 1] > ciw[0];
    int64_t k = pc;
    int64_t kw = k % s.KW, kh = (k / s.KW) % s.KH, kd = (k / (s.KW * s.KH)) % s.KD, ic = k / (s.KW * s.KH * s.KD);
    for (int64_t kk = 0; kk < kc; ++kk) {
      float* d = dst + kk * NR;
      const float* xc = xg + ic * plane;
      const int64_t dd = kd * s.dilation[0], dh = kh * s.dilation[1], dw = kw * s.dilation[2];
      if (one_row) {
        const int64_t id = cid[0] + dd, ih = cih[0] + dh, iw0 = ciw[0] + dw;
        const int64_t iw_last = ciw[NR - 1] + dw;
        if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
          _mm256_store_ps(d, _mm256_setzero_ps());
          _mm256_store_ps(d + 8, _mm256_setzero_ps());
        } else {
          const float* row = xc + (id * s.H + ih) * s.W;
          if (s.stride[2] == 1 && iw0 >= 0 && iw_last < s.W) {
            _mm256_store_ps(d, _mm256_loadu_ps(row + iw0));
            _mm256_store_ps(d + 8, _mm256_loadu_ps(row + iw0 + 8));
          } else if (s.stride[2] == 1) {  // a row edge: lanes outside [0, W) read as zero
            const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            const __m256i lo = _mm256_set1_epi32(static_cast<int>(-iw0 - 1));
            const __m256i hi = _mm256_set1_epi32(static_cast<int>(s.W - iw0));
            const __m256i lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
            const __m256i m0 = _mm256_and_si256(_mm256_cmpgt_epi32(lane, lo), _mm256_cmpgt_epi32(hi, lane));
            const __m256i m1 = _mm256_and_si256(_mm256_cmpgt_epi32(lane8, lo), _mm256_cmpgt_epi32(hi, lane8));
            _mm256_store_ps(d, _mm256_maskload_ps(row + iw0, m0));
            _mm256_store_ps(d + 8, _mm256_maskload_ps(row + iw0 + 8, m1));
          } else if (s.stride[2] == 2 && iw0 >= 0 && iw_last < s.W - 1) {
            // d[t] = row[iw0 + 2t]: the even lanes of 32 contiguous floats
            const float* src = row + iw0;
            const __m256 e0 = _mm256_shuffle_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 8), _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 e1 = _mm256_shuffle_ps(_mm256_loadu_ps(src + 16), _mm256_loadu_ps(src + 24), _MM_SHUFFLE(2, 0, 2, 0));
            _mm256_store_ps(d, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e0), _MM_SHUFFLE(3, 1, 2, 0))));
            _mm256_store_ps(d + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e1), _MM_SHUFFLE(3, 1, 2, 0))));
          } else {
            for (int64_t t = 0; t < NR; ++t) {
              const int64_t iw = ciw[t] + dw;
              d[t] = iw >= 0 && iw < s.W ? row[iw] : 0.0f;
            }
          }
        }
      } else {
        for (int64_t t = 0; t < NR; ++t) {
          const int64_t id = cid[t] + dd, ih = cih[t] + dh, iw = ciw[t] + dw;
          d[t] = t < cols && id >= 0 && id < s.D && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W
                     ? xc[(id * s.H + ih) * s.W + iw]
                     : 0.0f;
        }
      }
      if (++kw == s.KW) {
        kw = 0;
        if (++kh == s.KH) {
          kh = 0;
          if (++kd == s.KD) {
            kd = 0;
            ++ic;
          }
        }
      }
    }
  }
}

void conv_gemm_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t K = Cg * s.KD * s.KH * s.KW;
  const int64_t Nsp = s.OD * s.OH * s.OW;
  const int64_t a_size = gemm::packed_a_size(OCg, K);
  std::vector<float> Ap(static_cast<size_t>(a_size * G));
  for (int64_t g = 0; g < G; ++g) gemm::pack_a(w + g * OCg * K, K, 1, OCg, K, Ap.data() + g * a_size);
  const int64_t tiles = (Nsp + gemm::NC - 1) / gemm::NC;
  parallel_for(s.N * G * tiles, 1, [&](int64_t begin, int64_t end) {
    float* work = thread_scratch<float>(gemm::KC * gemm::NC);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tile = t % tiles, g = (t / tiles) % G, n = t / (tiles * G);
      const float* xg = x + (n * s.C + g * Cg) * s.D * s.H * s.W;
      float* yg = y + (n * s.OC + g * OCg) * Nsp;
      gemm::Epilogue ep;
      ep.row_bias = bias ? bias + g * OCg : nullptr;
      ep.relu = relu;
      const int64_t j0 = tile * gemm::NC, j1 = std::min(Nsp, j0 + gemm::NC);
      gemm::gemm_columns(OCg, K, Ap.data() + g * a_size,
                         [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                           pack_conv_columns(s, xg, pc, kc, jc, nc, Bp);
                         },
                         j0, j1, yg, Nsp, ep, work);
    }
  });
}

// Direct kernel, stride 1 along W: OCB output channels of one group, 16 outputs of a row at a time.
// y[n, oc, od, oh, ow] = bias[oc] + sum_{ic, kd, kh, kw} w[oc, ic, kd, kh, kw] * x[n, g*Cg + ic, id, ih, ow - pw + kw*dw]
template <int OCB>
void direct_row_block(const ConvShape& s, const float* xg, const float* w, const float* bias, float* y, int64_t oc0,
                      int64_t od, int64_t oh, bool relu, Range interior) {
  const int64_t Cg = s.C / s.groups, kvol = s.KD * s.KH * s.KW;
  const int64_t OW = s.OW;
  float* out[OCB];
  const float* wt[OCB];
  for (int o = 0; o < OCB; ++o) {
    out[o] = y + (((oc0 + o) * s.OD + od) * s.OH + oh) * OW;
    wt[o] = w + (oc0 + o) * Cg * kvol;
  }
  auto scalar_at = [&](int o, int64_t ow) {
    float acc = bias ? bias[oc0 + o] : 0.0f;
    for (int64_t ic = 0; ic < Cg; ++ic)
      for (int64_t kd = 0; kd < s.KD; ++kd) {
        const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
        if (id < 0 || id >= s.D) continue;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
          if (ih < 0 || ih >= s.H) continue;
          const float* row = xg + ((ic * s.D + id) * s.H + ih) * s.W;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t iw = ow - s.pad[2] + kw * s.dilation[2];
            if (iw < 0 || iw >= s.W) continue;
            acc = std::fma(wt[o][((ic * s.KD + kd) * s.KH + kh) * s.KW + kw], row[iw], acc);
          }
        }
      }
    return relu ? (acc > 0.0f ? acc : (acc != acc ? acc : 0.0f)) : acc;
  };
  int64_t ow = 0;
  for (; ow < interior.begin; ++ow)
    for (int o = 0; o < OCB; ++o) out[o][ow] = scalar_at(o, ow);
  const __m256 zero = _mm256_setzero_ps();
  auto vector_block = [&](int64_t ow) {
    __m256 acc[OCB][2];
    for (int o = 0; o < OCB; ++o) acc[o][0] = acc[o][1] = _mm256_set1_ps(bias ? bias[oc0 + o] : 0.0f);
    for (int64_t ic = 0; ic < Cg; ++ic)
      for (int64_t kd = 0; kd < s.KD; ++kd) {
        const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
        if (id < 0 || id >= s.D) continue;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
          if (ih < 0 || ih >= s.H) continue;
          const float* row = xg + ((ic * s.D + id) * s.H + ih) * s.W + ow - s.pad[2];
          const int64_t wbase = ((ic * s.KD + kd) * s.KH + kh) * s.KW;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const float* src = row + kw * s.dilation[2];
            const __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
            for (int o = 0; o < OCB; ++o) {
              const __m256 wv = _mm256_broadcast_ss(wt[o] + wbase + kw);
              acc[o][0] = _mm256_fmadd_ps(wv, v0, acc[o][0]);
              acc[o][1] = _mm256_fmadd_ps(wv, v1, acc[o][1]);
            }
          }
        }
      }
    for (int o = 0; o < OCB; ++o) {
      if (relu) {
        acc[o][0] = _mm256_max_ps(zero, acc[o][0]);
        acc[o][1] = _mm256_max_ps(zero, acc[o][1]);
      }
      _mm256_storeu_ps(out[o] + ow, acc[o][0]);
      _mm256_storeu_ps(out[o] + ow + 8, acc[o][1]);
    }
  };
  if (interior.end - interior.begin >= 16) {
    // A last block that would run past the interior is moved back to end with it; the outputs it
    // recomputes get the same operations, so the same bits.
    for (int64_t start = interior.begin;; start += 16) {
      const int64_t block = std::min(start, interior.end - 16);
      vector_block(block);
      if (block + 16 >= interior.end) break;
    }
    ow = interior.end;
  }
  for (; ow < OW; ++ow)
    for (int o = 0; o < OCB; ++o) out[o][ow] = scalar_at(o, ow);
}

// One output channel, stride 1 along H and W: RB output rows x 16 columns at a time, so each input
// row loaded for a block serves every output row it touches (about half the loads per FMA of the
// row-at-a-time kernel). Per output the taps are summed in (ic, kd, kh, kw) order.
// y[oc, od, oh0 + r, ow] = bias[oc] + sum w[oc, ic, kd, kh, kw] * x[ic, id, oh0 + r - ph + kh*dh, ow - pw + kw*dw]
template <int RB>
void direct_rows_one_channel(const ConvShape& s, const float* xg, const float* w, const float* bias, float* y,
                             int64_t oc, int64_t od, int64_t oh0, bool relu, Range interior) {
  const int64_t Cg = s.C / s.groups, kvol = s.KD * s.KH * s.KW;
  const float* wt = w + oc * Cg * kvol;
  const float b = bias ? bias[oc] : 0.0f;
  const int64_t dh = s.dilation[1], dw = s.dilation[2];
  float* out = y + ((oc * s.OD + od) * s.OH + oh0) * s.OW;
  auto scalar_at = [&](int64_t r, int64_t ow) {
    float acc = b;
    for (int64_t ic = 0; ic < Cg; ++ic)
      for (int64_t kd = 0; kd < s.KD; ++kd) {
        const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
        if (id < 0 || id >= s.D) continue;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh0 + r - s.pad[1] + kh * dh;
          if (ih < 0 || ih >= s.H) continue;
          const float* row = xg + ((ic * s.D + id) * s.H + ih) * s.W;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t iw = ow - s.pad[2] + kw * dw;
            if (iw < 0 || iw >= s.W) continue;
            acc = std::fma(wt[((ic * s.KD + kd) * s.KH + kh) * s.KW + kw], row[iw], acc);
          }
        }
      }
    return relu ? (acc > 0.0f ? acc : (acc != acc ? acc : 0.0f)) : acc;
  };
  const __m256 zero = _mm256_setzero_ps();
  // Rows above or below the input read a zero row instead of branching, so that the RB
  // accumulators stay in registers.
  const float* zero_row = thread_zeros(s.W + 32);
  auto vector_block = [&](int64_t ow) {
    __m256 acc[RB][2];
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = _mm256_set1_ps(b);
    for (int64_t ic = 0; ic < Cg; ++ic)
      for (int64_t kd = 0; kd < s.KD; ++kd) {
        const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
        if (id < 0 || id >= s.D) continue;
        const float* wk = wt + (ic * s.KD + kd) * s.KH * s.KW;
        const float* plane = xg + (ic * s.D + id) * s.H * s.W;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const float* rows[RB];
          bool any = false;
#pragma GCC unroll 8
          for (int r = 0; r < RB; ++r) {
            const int64_t ih = oh0 + r - s.pad[1] + kh * dh;
            const bool inside = ih >= 0 && ih < s.H;
            any |= inside;
            rows[r] = (inside ? plane + ih * s.W : zero_row) + ow - s.pad[2];
          }
          if (!any) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const __m256 wv = _mm256_broadcast_ss(wk + kh * s.KW + kw);
#pragma GCC unroll 8
            for (int r = 0; r < RB; ++r) {
              acc[r][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(rows[r] + kw * dw), acc[r][0]);
              acc[r][1] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(rows[r] + kw * dw + 8), acc[r][1]);
            }
          }
        }
      }
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      if (relu) {
        acc[r][0] = _mm256_max_ps(zero, acc[r][0]);
        acc[r][1] = _mm256_max_ps(zero, acc[r][1]);
      }
      _mm256_storeu_ps(out + r * s.OW + ow, acc[r][0]);
      _mm256_storeu_ps(out + r * s.OW + ow + 8, acc[r][1]);
    }
  };
  for (int64_t ow = 0; ow < interior.begin; ++ow)
    for (int r = 0; r < RB; ++r) out[r * s.OW + ow] = scalar_at(r, ow);
  int64_t ow = interior.begin;
  if (interior.end - interior.begin >= 16) {
    for (int64_t start = interior.begin;; start += 16) {
      const int64_t block = std::min(start, interior.end - 16);
      vector_block(block);
      if (block + 16 >= interior.end) break;
    }
    ow = interior.end;
  }
  for (; ow < s.OW; ++ow)
    for (int r = 0; r < RB; ++r) out[r * s.OW + ow] = scalar_at(r, ow);
}

void conv_direct_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  constexpr int64_t OCB = 4;
  const int64_t oc_blocks = (OCg + OCB - 1) / OCB;
  // Outputs whose taps all fall inside the row: ow - pw >= 0 and ow - pw + (KW-1)*dw <= W - 1.
  Range interior;
  interior.begin = std::min(s.OW, s.pad[2]);
  interior.end = std::max(interior.begin, std::min(s.OW, s.W - 1 + s.pad[2] - (s.KW - 1) * s.dilation[2] + 1));
  if (OCg == 1 && s.stride[1] == 1) {  // single-channel images and depthwise: rows in blocks of 4
    constexpr int64_t RB = 4;
    const int64_t row_blocks = (s.OH + RB - 1) / RB;
    parallel_for(s.N * s.OC * s.OD * row_blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t rb = t % row_blocks, od = (t / row_blocks) % s.OD, oc = (t / (row_blocks * s.OD)) % s.OC;
        const int64_t n = t / (row_blocks * s.OD * s.OC);
        const float* xg = x + (n * s.C + oc * Cg) * s.D * s.H * s.W;
        float* yn = y + n * s.OC * s.OD * s.OH * s.OW;
        const int64_t oh0 = rb * RB;
        switch (std::min(RB, s.OH - oh0)) {
          case 4: direct_rows_one_channel<4>(s, xg, w, bias, yn, oc, od, oh0, relu, interior); break;
          case 3: direct_rows_one_channel<3>(s, xg, w, bias, yn, oc, od, oh0, relu, interior); break;
          case 2: direct_rows_one_channel<2>(s, xg, w, bias, yn, oc, od, oh0, relu, interior); break;
          default: direct_rows_one_channel<1>(s, xg, w, bias, yn, oc, od, oh0, relu, interior); break;
        }
      }
    });
    return;
  }
  const int64_t rows = s.N * G * oc_blocks * s.OD * s.OH;
  parallel_for(rows, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, s.OW * Cg * s.KD * s.KH * s.KW)),
               [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, ob = (r / (s.OH * s.OD)) % oc_blocks;
      const int64_t g = (r / (s.OH * s.OD * oc_blocks)) % G, n = r / (s.OH * s.OD * oc_blocks * G);
      const float* xg = x + (n * s.C + g * Cg) * s.D * s.H * s.W;
      float* yn = y + n * s.OC * s.OD * s.OH * s.OW;
      const int64_t oc0 = g * OCg + ob * OCB;
      switch (std::min(OCB, g * OCg + OCg - oc0)) {
        case 4: direct_row_block<4>(s, xg, w, bias, yn, oc0, od, oh, relu, interior); break;
        case 3: direct_row_block<3>(s, xg, w, bias, yn, oc0, od, oh, relu, interior); break;
        case 2: direct_row_block<2>(s, xg, w, bias, yn, oc0, od, oh, relu, interior); break;
        default: direct_row_block<1>(s, xg, w, bias, yn, oc0, od, oh, relu, interior); break;
      }
    }
  });
}

// The plan, cached per shape (conv_plan.h): Winograd for the 3x3 stride-1 convs it takes; the
// direct kernel where a GEMM would spend its time packing (few input channels per group) and W is
// unstrided; the implicit GEMM everywhere else.
void conv_forward_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                           bool relu) {
  const int64_t Cg = s.C / s.groups;
  const int64_t taps = Cg * s.KD * s.KH * s.KW;
  const bool direct_fits = s.stride[2] == 1;
  // A GEMM with fewer output channels than its tile has rows wastes most of each tile.
  const bool direct_wins = direct_fits && (Cg <= 2 || taps <= 27 || s.OC / s.groups <= 4);
  auto run_winograd = [&] {  // false from Winograd (non-finite values): redo exactly
    if (!conv_winograd_f32(s, x, w, bias, y, relu)) conv_gemm_f32(s, x, w, bias, y, relu);
  };
  auto run_direct = [&] { conv_direct_f32(s, x, w, bias, y, relu); };
  auto run_gemm = [&] { conv_gemm_f32(s, x, w, bias, y, relu); };
  std::vector<ConvCandidate> candidates{{ConvAlgo::gemm, run_gemm}};
  if (direct_fits) candidates.push_back({ConvAlgo::direct, run_direct});
  const bool winograd_fits = winograd_applicable(s);
  if (winograd_fits) candidates.push_back({ConvAlgo::winograd, run_winograd});
  const ConvAlgo rule = winograd_fits ? ConvAlgo::winograd : direct_wins ? ConvAlgo::direct : ConvAlgo::gemm;
  switch (conv_plan(static_cast<int>(Isa::avx2), sizeof(float), s, relu, rule, candidates)) {
    case ConvAlgo::winograd: run_winograd(); break;
    case ConvAlgo::direct: run_direct(); break;
    case ConvAlgo::gemm: run_gemm(); break;
  }
}

void conv_forward_avx2(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                       Activation act) {
  conv_forward_avx2_f32(s, x, w, bias, y, act == Activation::relu);
}

}  // namespace

void add_conv_avx2(KernelTable& t) { t.f32.conv_forward = conv_forward_avx2; }

}  // namespace medconv
