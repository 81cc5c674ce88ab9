// Convolution, AVX2+FMA, float32: the plan, and the implicit GEMM (im2col columns packed straight
// from the input) for channel-rich convs; the direct kernel (conv_direct_avx2.cpp) for few channels
// (single-channel images, first layers, depthwise, 3D CT). float64 stays on the reference.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "aligned.h"
#include "avx2_kernels.h"
#include "conv_gemm.h"
#include "conv_direct_avx2.h"
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

// The implicit GEMM (conv_gemm.h's driver) with this file's packer.
void conv_gemm_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  conv_gemm::conv_gemm_f32<gemm::Gemm>(s, x, w, bias, y, relu, pack_conv_columns);
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
  auto run_direct = [&] { conv_direct_avx2_f32(s, x, w, bias, y, relu); };
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
