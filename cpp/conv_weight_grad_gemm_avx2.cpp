// Convolution weight gradient, float32, on a packed GEMM (packed_gemm.h: AVX2's 6x16 or AVX-512's 8x32): per group,
//   gw[oc, j] = sum_k gy(oc, k) * col(k, j),  k = (n, od, oh, ow),  j = (ic, kd, kh, kw),
// with col(k, j) = x[n, g*Cg + ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0
// outside), packed straight from the input. K is cut into fixed chunks (a run of one image's output
// positions); each (chunk, column tile) is one task writing its own partial sums, and the partials
// are added in chunk order: the bits do not depend on the thread count.
#include <immintrin.h>

#include <algorithm>

#include "aligned.h"
#include "lanes_avx2.h"
#include "memory.h"
#include "nn_kernels.h"
#include "packed_gemm.h"
#include "packed_rows_avx2.h"
#include "parallel.h"

namespace medconv {
namespace {

constexpr int64_t kChunk = 4096;  // output positions per K chunk

// rows[t][kk] = col(p_begin + kk, j0 + t) for t < count (zero rows after NR), kk < kc: for each
// column j of the panel, the input values along the output rows, copied in runs.
template <int NR>
void gather_rows(const ConvShape& s, const float* xg, int64_t p_begin, int64_t kc, int64_t j0, int count,
                 float* rows, int64_t ld) {
  const int64_t plane = s.D * s.H * s.W;
  for (int t = 0; t < NR; ++t) {
    float* dst = rows + t * ld;
    if (t >= count) {
      std::fill(dst, dst + kc, 0.0f);
      continue;
    }
    const int64_t j = j0 + t;
    const ConvTap tap(s, j);
    const int64_t kw = tap.kw, kh = tap.kh, kd = tap.kd, ic = tap.ic;
    const float* xc = xg + ic * plane;
    const int64_t w_off = kw * s.dilation[2] - s.pad[2];
    for (int64_t kk = 0, p = p_begin; kk < kc;) {
      const int64_t ow = p % s.OW, row = p / s.OW, oh = row % s.OH, od = row / s.OH;
      const int64_t run = std::min(s.OW - ow, kc - kk);
      const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
      const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
      float* out = dst + kk;
      if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
        std::fill(out, out + run, 0.0f);
      } else {
        const float* in = xc + (id * s.H + ih) * s.W;
        // outputs q whose input column (ow + q) * sw + w_off lies in [0, W)
        int64_t lo = 0, hi = run;
        while (lo < run && (ow + lo) * s.stride[2] + w_off < 0) ++lo;
        while (hi > lo && (ow + hi - 1) * s.stride[2] + w_off >= s.W) --hi;
        std::fill(out, out + lo, 0.0f);
        if (s.stride[2] == 1) {
          std::copy(in + ow + lo + w_off, in + ow + hi + w_off, out + lo);
        } else {
          for (int64_t q = lo; q < hi; ++q) out[q] = in[(ow + q) * s.stride[2] + w_off];
        }
        std::fill(out + hi, out + run, 0.0f);
      }
      kk += run;
      p += run;
    }
  }
}

// dst[kk * NR + t] = rows[t][kk] for t < NR, kk < kc: 8 x 8 transposes of the gathered rows.
template <int NR>
void transpose_rows(const float* rows, int64_t ld, int64_t kc, float* dst) {
  int64_t kk = 0;
  for (; kk + 8 <= kc; kk += 8)
    for (int half = 0; half < NR / 8; ++half) {
      __m256 r[8], c[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(rows + (half * 8 + i) * ld + kk);
      avx2::transpose8(r, c);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (kk + j) * NR + half * 8, c[j]);
    }
  for (; kk < kc; ++kk)
    for (int t = 0; t < NR; ++t) dst[kk * NR + t] = rows[t * ld + kk];
}

// gemm's packed B block ([ceil(nc / NR)][kc][NR], columns past nc zero) of col for one image and
// group: Bp[jp][kk][t] = col(p_begin + kk, jc + jp * NR + t). xg: [Cg, D, H, W].
template <int NR>
void pack_weight_columns(const ConvShape& s, const float* xg, int64_t p_begin, int64_t kc, int64_t jc, int64_t nc,
                         float* Bp) {
  const int64_t ld = kPackedMaxKc;
  float* rows = thread_scratch<float>(NR * ld, 4);
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    gather_rows<NR>(s, xg, p_begin, kc, jc + j0, static_cast<int>(std::min<int64_t>(NR, nc - j0)), rows, ld);
    transpose_rows<NR>(rows, ld, kc, Bp + (j0 / NR) * kc * NR);
  }
}

}  // namespace

// x: [N, C, D, H, W], gy: [N, OC, OD, OH, OW], gw: [OC, Cg, KD, KH, KW]
void conv_backward_weight_gemm_f32(const ConvShape& s, const float* x, const float* gy, float* gw, const PackedGemm& gemm) {
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t J = Cg * s.KD * s.KH * s.KW, P = s.OD * s.OH * s.OW;
  if (P == 0 || s.N == 0) {
    std::fill(gw, gw + s.OC * J, 0.0f);
    return;
  }
  const int64_t p_chunks = (P + kChunk - 1) / kChunk, chunks = s.N * p_chunks;
  const int64_t j_tiles = (J + gemm.nc - 1) / gemm.nc;
  // A = gy, packed per (group, chunk): [ceil(OCg / MR)][chunk length][MR]
  const int64_t a_size = gemm.packed_a_size(OCg, kChunk);
  auto Ap = call_buffer<float>(G * chunks * a_size);  // from the output cache when large: no page faults per call
  parallel_for(G * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t / chunks, c = t % chunks, n = c / p_chunks, p0 = (c % p_chunks) * kChunk;
      pack_rows_as_a(gemm, gy + (n * s.OC + g * OCg) * P + p0, P, OCg, std::min(kChunk, P - p0), Ap.get() + t * a_size);
    }
  });
  // partial[g][chunk]: [OCg, J]
  auto partial = call_buffer<float>(G * chunks * OCg * J);
  parallel_for(G * chunks * j_tiles, 1, [&](int64_t begin, int64_t end) {
    float* work = thread_scratch<float>(gemm.kc * gemm.nc);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tile = t % j_tiles, gc = t / j_tiles, g = gc / chunks, c = gc % chunks;
      const int64_t n = c / p_chunks, p0 = (c % p_chunks) * kChunk;
      const float* xg = x + (n * s.C + g * Cg) * s.D * s.H * s.W;
      const int64_t j0 = tile * gemm.nc, j1 = std::min(J, j0 + gemm.nc);
      gemm.gemm_columns(OCg, std::min(kChunk, P - p0), Ap.get() + gc * a_size,
                         [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                           if (gemm.nr == 32) pack_weight_columns<32>(s, xg, p0 + pc, kc, jc, nc, Bp);
                           else pack_weight_columns<16>(s, xg, p0 + pc, kc, jc, nc, Bp);
                         },
                         j0, j1, partial.get() + gc * OCg * J, J, gemm_common::Epilogue{}, work);
    }
  });
  // gw[g*OCg + oc, j] = the group's partials added in chunk order
  const int64_t per_group = OCg * J;
  parallel_for(G * per_group, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      const int64_t g = e / per_group, i = e % per_group;
      const float* src = partial.get() + g * chunks * per_group + i;
      float acc = src[0];
      for (int64_t c = 1; c < chunks; ++c) acc += src[c * per_group];
      gw[e] = acc;
    }
  });
}

}  // namespace medconv
