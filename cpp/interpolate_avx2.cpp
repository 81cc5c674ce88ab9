// Resampling forward (nearest, nearest-exact, (bi/tri)linear), AVX2, float32: interpolate_ref's
// taps (interpolate_taps.h) and its arithmetic, the same bits, 8 outputs of a row at a time with
// their inputs gathered from each tap row (separate multiplies and adds, in the reference's order:
// lw, then lh, then ld, each sum starting from 0).
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
      const int64_t id[2] = {a.d.i0[od], a.d.i1[od]}, ih[2] = {a.h.i0[oh], a.h.i1[oh]};
      const float ld[2] = {a.d.l0[od], a.d.l1[od]}, lh[2] = {a.h.l0[oh], a.h.l1[oh]};
      for (int64_t ow = 0; ow < full; ow += 8) {
        const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0.data() + ow));
        const __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1.data() + ow));
        const __m256 l0 = _mm256_loadu_ps(a.w.l0.data() + ow), l1 = _mm256_loadu_ps(a.w.l1.data() + ow);
        __m256 acc = _mm256_setzero_ps();
        for (int i = 0; i < a.nd; ++i) {
          __m256 acc_h = _mm256_setzero_ps();
          for (int j = 0; j < a.nh; ++j) {
            const float* row = xp + (id[i] * s.H + ih[j]) * s.W;
            const __m256 g0 = _mm256_i32gather_ps(row, i0, 4);
            __m256 acc_w = _mm256_add_ps(_mm256_setzero_ps(), a.nw == 1 ? g0 : _mm256_mul_ps(l0, g0));
            if (a.nw == 2) acc_w = _mm256_add_ps(acc_w, _mm256_mul_ps(l1, _mm256_i32gather_ps(row, i1, 4)));
            acc_h = _mm256_add_ps(acc_h, a.nh == 1 ? acc_w : _mm256_mul_ps(_mm256_set1_ps(lh[j]), acc_w));
          }
          acc = _mm256_add_ps(acc, a.nd == 1 ? acc_h : _mm256_mul_ps(_mm256_set1_ps(ld[i]), acc_h));
        }
        _mm256_storeu_ps(out + ow, acc);
      }
      for (int64_t ow = full; ow < s.OW; ++ow) {  // the reference's scalar loop
        const int64_t iw[2] = {a.w.i0[ow], a.w.i1[ow]};
        const float lw[2] = {a.w.l0[ow], a.w.l1[ow]};
        float acc = 0.0f;
        for (int i = 0; i < a.nd; ++i) {
          float acc_h = 0.0f;
          for (int j = 0; j < a.nh; ++j) {
            const float* row = xp + (id[i] * s.H + ih[j]) * s.W;
            float acc_w = 0.0f;
            for (int k = 0; k < a.nw; ++k) acc_w += a.nw == 1 ? row[iw[k]] : lw[k] * row[iw[k]];
            acc_h += a.nh == 1 ? acc_w : lh[j] * acc_w;
          }
          acc += a.nd == 1 ? acc_h : ld[i] * acc_h;
        }
        out[ow] = acc;
      }
    }
  });
}

}  // namespace

void add_interpolate_avx2(KernelTable& t) { t.f32.interpolate = interpolate_avx2; }

}  // namespace medconv
