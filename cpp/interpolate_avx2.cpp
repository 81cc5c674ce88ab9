// Resampling (nearest, nearest-exact, (bi/tri)linear), AVX2, float32, with interpolate_ref's taps
// (interpolate_taps.h) and arithmetic, the same bits. Forward: 8 outputs of a row at a time, their
// inputs gathered from each tap row (separate multiplies and adds, in the reference's order: lw,
// then lh, then ld, each sum starting from 0). Backward: linear upsamplings as the reference
// (interpolate_backward.h, here with 8-float vectors), nearest upsamplings by integer factors.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "avx2_kernels.h"
#include "interpolate_taps.h"
#include "nn_kernels.h"
#include "parallel.h"

// No fused multiply-adds here: the reference (portable flags) rounds each product.
#pragma GCC optimize("fp-contract=off")
#include "interpolate_backward.h"  // after the pragma: its loops are compiled under it

namespace medconv {
namespace {

void interpolate_avx2(const InterpShape& s, const float* x, float* y) {
  const AllTaps<float> a = all_taps<float>(s);
  if (s.W > INT32_MAX) {
    interpolate_ref<float>(s, x, y);
    return;
  }
  std::vector<int32_t> w0(a.w.i0.begin(), a.w.i0.end()), w1(a.w.i1.begin(), a.w.i1.end());
  const int64_t rows = s.planes * s.OD * s.OH, in_plane = s.D * s.H * s.W, full = s.OW / 8 * 8;
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.OW)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, p = r / (s.OH * s.OD);
      const float* xp = x + p * in_plane;
      float* out = y + r * s.OW;
      const RowTaps<float> rt = row_taps(a, od, oh);
      for (int64_t ow = 0; ow < full; ow += 8) {
        const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0.data() + ow));
        const __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1.data() + ow));
        const __m256 l0 = _mm256_loadu_ps(a.w.l0.data() + ow), l1 = _mm256_loadu_ps(a.w.l1.data() + ow);
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < a.nd; ++i) {
          __m256 acc_h = _mm256_setzero_ps();
          for (int j = 0; j < a.nh; ++j) {
            const float* row = xp + (rt.id[i] * s.H + rt.ih[j]) * s.W;
            const __m256 g0 = _mm256_i32gather_ps(row, i0, 4);
            __m256 acc_w = _mm256_add_ps(_mm256_setzero_ps(), a.nw == 1 ? g0 : _mm256_mul_ps(l0, g0));
            if (a.nw == 2) acc_w = _mm256_add_ps(acc_w, _mm256_mul_ps(l1, _mm256_i32gather_ps(row, i1, 4)));
            acc_h = _mm256_add_ps(acc_h, a.nh == 1 ? acc_w : _mm256_mul_ps(_mm256_set1_ps(rt.lh[j]), acc_w));
          }
          acc = _mm256_add_ps(acc, a.nd == 1 ? acc_h : _mm256_mul_ps(_mm256_set1_ps(rt.ld[i]), acc_h));
        }
        _mm256_storeu_ps(out + ow, acc);
      }
      for (int64_t ow = full; ow < s.OW; ++ow) out[ow] = interpolate_point(s, a, rt, xp, ow);
    }
  });
}

// The factor k with out == k * in and tap o -> o / k (a nearest upsampling by an integer), or 0.
int64_t integer_factor(const Taps<float>& t, int64_t in, int64_t out, int ntaps) {
  if (ntaps != 1 || in == 0 || out % in != 0) return 0;
  const int64_t k = out / in;
  for (int64_t o = 0; o < out; ++o)
    if (t.i0[o] != o / k) return 0;
  return k;
}

// interpolate_backward_ref's scatter with the tap counts fixed at compile time and the tap rows
// hoisted out of the W loop: the same additions in the same order (output rows, outputs, then taps
// d, h, w), so the same bits.
template <int ND, int NH, int NW>
void scatter_taps(const InterpShape& s, const AllTaps<float>& a, const float* gy, float* gx) {
  const int64_t in_plane = s.D * s.H * s.W, out_plane = s.OD * s.OH * s.OW;
  parallel_for(s.planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane + out_plane)),
               [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* g = gx + p * in_plane;
      std::fill(g, g + in_plane, 0.0f);
      const float* gp = gy + p * out_plane;
      for (int64_t od = 0; od < s.OD; ++od)
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          float* rows[ND][NH];
          float lhd[ND][NH], ld[ND];
          for (int i = 0; i < ND; ++i) {
            ld[i] = i ? a.d.l1[od] : a.d.l0[od];
            for (int j = 0; j < NH; ++j) {
              rows[i][j] = g + ((i ? a.d.i1[od] : a.d.i0[od]) * s.H + (j ? a.h.i1[oh] : a.h.i0[oh])) * s.W;
              lhd[i][j] = j ? a.h.l1[oh] : a.h.l0[oh];
            }
          }
          const float* src = gp + (od * s.OH + oh) * s.OW;
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            const float v = src[ow];
            const int64_t iw0 = a.w.i0[ow], iw1 = a.w.i1[ow];
            const float lw0 = a.w.l0[ow], lw1 = a.w.l1[ow];
            for (int i = 0; i < ND; ++i) {
              const float vd = ND == 1 ? v : v * ld[i];
              for (int j = 0; j < NH; ++j) {
                const float vh = NH == 1 ? vd : vd * lhd[i][j];
                float* row = rows[i][j];
                if (NW == 1) {
                  row[iw0] += vh;
                } else {
                  row[iw0] += vh * lw0;
                  row[iw1] += vh * lw1;
                }
              }
            }
          }
        }
    }
  });
}

// The gradient of a nearest upsampling by integer factors: every output adds to one input, in the
// reference's order (output rows in order, each row's outputs in order), so the same bits; rows
// by a factor of 2 along W add their even and then their odd outputs 8 inputs at a time. Linear
// upsamplings: the separable passes; others: scatter_taps.
void interpolate_backward_avx2(const InterpShape& s, const float* gy, float* gx) {
  const AllTaps<float> a = all_taps<float>(s);
  if (separable_backward_pays(s, a)) {
    interpolate_backward_separable<float>(s, a, gy, gx);
    return;
  }
  const int64_t kd = integer_factor(a.d, s.D, s.OD, a.nd), kh = integer_factor(a.h, s.H, s.OH, a.nh),
                kw = integer_factor(a.w, s.W, s.OW, a.nw);
  if (kd == 0 || kh == 0 || kw == 0) {
    const int code = (a.nd - 1) * 4 + (a.nh - 1) * 2 + (a.nw - 1);
    switch (code) {
      case 0: return scatter_taps<1, 1, 1>(s, a, gy, gx);
      case 1: return scatter_taps<1, 1, 2>(s, a, gy, gx);
      case 2: return scatter_taps<1, 2, 1>(s, a, gy, gx);
      case 3: return scatter_taps<1, 2, 2>(s, a, gy, gx);
      case 4: return scatter_taps<2, 1, 1>(s, a, gy, gx);
      case 5: return scatter_taps<2, 1, 2>(s, a, gy, gx);
      case 6: return scatter_taps<2, 2, 1>(s, a, gy, gx);
      default: return scatter_taps<2, 2, 2>(s, a, gy, gx);
    }
  }
  const int64_t in_plane = s.D * s.H * s.W, out_plane = s.OD * s.OH * s.OW;
  const int64_t vec = kw <= 2 ? s.W / 8 * 8 : 0;  // inputs done 8 at a time
  parallel_for(s.planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane + out_plane)),
               [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* g = gx + p * in_plane;
      std::fill(g, g + in_plane, 0.0f);
      for (int64_t od = 0; od < s.OD; ++od)
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const float* src = gy + p * out_plane + (od * s.OH + oh) * s.OW;
          float* row = g + ((od / kd) * s.H + oh / kh) * s.W;
          for (int64_t iw = 0; iw < vec; iw += 8) {
            __m256 acc = _mm256_loadu_ps(row + iw);
            if (kw == 1) {
              acc = _mm256_add_ps(acc, _mm256_loadu_ps(src + iw));
            } else {  // src[2 iw + 0] then src[2 iw + 1]: the even and odd lanes of 16 floats
              const __m256 v0 = _mm256_loadu_ps(src + 2 * iw), v1 = _mm256_loadu_ps(src + 2 * iw + 8);
              const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
              const __m256 even = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(v0, v1, 0x88), order);
              const __m256 odd = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(v0, v1, 0xDD), order);
              acc = _mm256_add_ps(_mm256_add_ps(acc, even), odd);
            }
            _mm256_storeu_ps(row + iw, acc);
          }
          for (int64_t ow = vec * kw; ow < s.OW; ++ow) row[ow / kw] += src[ow];
        }
    }
  });
}

}  // namespace

void add_interpolate_avx2(KernelTable& t) {
  t.f32.interpolate = interpolate_avx2;
  t.f32.interpolate_backward = interpolate_backward_avx2;
}

}  // namespace medconv
