// Convolution weight gradient, AVX2 + FMA (channel-rich float32 layers go to the packed GEMM of
// conv_weight_grad_gemm_avx2.cpp): per image and per chunk of output positions, an
// im2col of the input chunk, then gw[oc, j] += dot(gy[n, oc, chunk], col[j, chunk]) with a 4x3
// register tile of 8-lane (4 for double) accumulators. Chunks and tiles are fixed by the shapes,
// not by the thread count, and each gw element is owned by one task per chunk, so the sums are
// the same for any number of threads.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "nn_kernels.h"
#include "packed_gemm.h"
#include "aligned.h"
#include "parallel.h"
#include "range.h"

namespace medconv {

namespace {

template <class T> struct Vec;
template <> struct Vec<float> {
  using V = __m256;
  static constexpr int width = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
template <> struct Vec<double> {
  using V = __m256d;
  static constexpr int width = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static double sum(V v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

// out[i * ldo + j] += sum_p a[i][p] * b[j][p], p < L, for an MR x NR tile.
// a: MR rows with stride lda, b: NR rows with stride ldb.
template <class T, int MR, int NR>
void tile(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t L, T* out, int64_t ldo) {
  using W = Vec<T>;
  typename W::V acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = W::zero();
  int64_t p = 0;
  for (; p + W::width <= L; p += W::width) {
    typename W::V bv[NR];
    for (int j = 0; j < NR; ++j) bv[j] = W::load(b + j * ldb + p);
    for (int i = 0; i < MR; ++i) {
      const typename W::V av = W::load(a + i * lda + p);
      for (int j = 0; j < NR; ++j) acc[i][j] = W::fma(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      T s = W::sum(acc[i][j]);
      for (int64_t q = p; q < L; ++q) s += a[i * lda + q] * b[j * ldb + q];  // scalar tail
      out[i * ldo + j] += s;
    }
}

template <class T, int MR>
void tile_rows(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t L, T* out, int64_t ldo, int nr) {
  switch (nr) {
    case 3: tile<T, MR, 3>(a, lda, b, ldb, L, out, ldo); break;
    case 2: tile<T, MR, 2>(a, lda, b, ldb, L, out, ldo); break;
    default: tile<T, MR, 1>(a, lda, b, ldb, L, out, ldo); break;
  }
}

template <class T>
void tile_any(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t L, T* out, int64_t ldo, int mr, int nr) {
  switch (mr) {
    case 4: tile_rows<T, 4>(a, lda, b, ldb, L, out, ldo, nr); break;
    case 3: tile_rows<T, 3>(a, lda, b, ldb, L, out, ldo, nr); break;
    case 2: tile_rows<T, 2>(a, lda, b, ldb, L, out, ldo, nr); break;
    default: tile_rows<T, 1>(a, lda, b, ldb, L, out, ldo, nr); break;
  }
}

constexpr int MR = 4, NR = 3;

}  // namespace

// x: [N, C, D, H, W], gy: [N, OC, OD, OH, OW], gw: [OC, Cg, KD, KH, KW]
// gw[oc, j] = sum_{n, p} gy[n, oc, p] * col_n[j, p], j = (ic, kd, kh, kw), p = (od, oh, ow),
// col_n[j, p] = x[n, g*Cg + ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 outside)
template <class T>
void conv_backward_weight_avx2(const ConvShape& s, const T* x, const T* gy, T* gw, const PackedGemm& gemm) {
  if constexpr (std::is_same<T, float>::value) {
    // 3x3 stride-1 layers: Winograd (4x fewer products), unless MEDCONV_CONV_ALGO asks for an exact
    // algorithm; redone exactly where it produced a non-finite value.
    const char* algo = std::getenv("MEDCONV_CONV_ALGO");
    const bool exact = algo && (std::strcmp(algo, "gemm") == 0 || std::strcmp(algo, "direct") == 0);
    if (!exact && conv_weight_grad_winograd_applies(s) && conv_backward_weight_winograd_f32(s, x, gy, gw, gemm)) return;
    // Channel-rich layers: the packed GEMM keeps its blocks in L1/L2 and scales across threads, where
    // the dot-product tiles below stream the im2col chunk from L3; it needs enough output channels
    // and columns to pay for gathering and transposing its columns.
    if (s.OC / s.groups >= 64 && (s.C / s.groups) * s.KD * s.KH * s.KW >= 512) {
      conv_backward_weight_gemm_f32(s, x, gy, gw, gemm);
      return;
    }
  }
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  const int64_t kvol = s.KD * s.KH * s.KW, J = Cg * kvol;
  const int64_t rows_out = s.OD * s.OH, P = rows_out * s.OW;
  const int64_t xplane = s.D * s.H * s.W;
  std::fill(gw, gw + s.OC * J, T(0));
  if (P == 0 || s.N == 0) return;
  // a chunk: whole output rows, about 256K col elements (or at least 1024 columns)
  const int64_t want = std::max<int64_t>(1024, (int64_t(1) << 18) / std::max<int64_t>(1, J));
  const int64_t rows_per_chunk = std::max<int64_t>(1, std::min(rows_out, want / std::max<int64_t>(1, s.OW)));
  const int64_t max_L = rows_per_chunk * s.OW;
  std::vector<Range> ow_range(s.KW);
  for (int64_t kw = 0; kw < s.KW; ++kw)
    ow_range[kw] = valid_outputs(s.OW, s.W, s.stride[2], s.pad[2], kw * s.dilation[2]);
  const int64_t oc_tiles = (OCg + MR - 1) / MR, j_tiles = (J + NR - 1) / NR;
  const int64_t chunks = (rows_out + rows_per_chunk - 1) / rows_per_chunk;
  // im2col of chunk r0 of image n into col: one col row (g, j) per call of row()
  auto im2col_row = [&](int64_t n, int64_t r0, int64_t nrows, int64_t gj, T* col) {
    const int64_t g = gj / J, j = gj % J;
    const ConvTap tap(s, j);
    const int64_t kw = tap.kw, kh = tap.kh, kd = tap.kd, ic = tap.ic;
    const T* xc = x + (n * s.C + g * Cg + ic) * xplane;
    T* dst = col + gj * max_L;
    const Range ro = ow_range[kw];
    const int64_t off = kw * s.dilation[2] - s.pad[2];
    for (int64_t r = 0; r < nrows; ++r) {
      const int64_t oh = (r0 + r) % s.OH, od = (r0 + r) / s.OH;
      const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
      const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
      T* out = dst + r * s.OW;
      if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
        std::fill(out, out + s.OW, T(0));
        continue;
      }
      const T* in = xc + (id * s.H + ih) * s.W;
      std::fill(out, out + ro.begin, T(0));
      if (s.stride[2] == 1) {
        std::copy(in + ro.begin + off, in + ro.end + off, out + ro.begin);
      } else {
        for (int64_t ow = ro.begin; ow < ro.end; ++ow) out[ow] = in[ow * s.stride[2] + off];
      }
      std::fill(out + ro.end, out + s.OW, T(0));
    }
  };
  // out[(g*OCg + oc) * J + j] += gy[n, g*OCg + oc, chunk] . col[g, j, chunk] for tile t (MR x NR)
  auto tile_task = [&](int64_t n, int64_t r0, int64_t L, int64_t t, const T* col, T* out) {
    const int64_t jt = t % j_tiles, ot = (t / j_tiles) % oc_tiles, g = t / (j_tiles * oc_tiles);
    const int64_t oc0 = ot * MR, j0 = jt * NR;
    const int mr = static_cast<int>(std::min<int64_t>(MR, OCg - oc0));
    const int nr = static_cast<int>(std::min<int64_t>(NR, J - j0));
    const T* a = gy + (n * s.OC + g * OCg + oc0) * P + r0 * s.OW;
    const T* b = col + (g * J + j0) * max_L;
    tile_any<T>(a, P, b, max_L, L, out + (g * OCg + oc0) * J + j0, J, mr, nr);
  };
  // Few weights (partials of every chunk within 4M values): one task per (image, chunk), each with its
  // own im2col and its own partial sums, added in (image, chunk) order afterwards, as the loop below adds
  // them to gw: the same bits, in one parallel region instead of two per chunk (S8: 220 a call, which
  // left 2 threads at 1 thread's speed whenever the second woke late).
  const int64_t tasks = s.N * chunks, per_task = s.OC * J;
  if (tasks * per_task <= (int64_t{1} << 22)) {
    std::vector<T> partial(static_cast<size_t>(tasks * per_task), T(0));
    parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
      T* col = thread_scratch<T>(s.groups * J * max_L, 4);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t n = task / chunks, r0 = (task % chunks) * rows_per_chunk;
        const int64_t nrows = std::min(rows_per_chunk, rows_out - r0), L = nrows * s.OW;
        for (int64_t gj = 0; gj < s.groups * J; ++gj) im2col_row(n, r0, nrows, gj, col);
        T* out = partial.data() + task * per_task;
        for (int64_t t = 0; t < s.groups * oc_tiles * j_tiles; ++t) tile_task(n, r0, L, t, col, out);
      }
    });
    for (int64_t task = 0; task < tasks; ++task) {
      const T* p = partial.data() + task * per_task;
      for (int64_t i = 0; i < per_task; ++i) gw[i] += p[i];
    }
    return;
  }
  std::vector<T> col(static_cast<size_t>(s.groups * J * max_L));
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t r0 = 0; r0 < rows_out; r0 += rows_per_chunk) {
      const int64_t nrows = std::min(rows_per_chunk, rows_out - r0), L = nrows * s.OW;
      parallel_for(s.groups * J, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, L)), [&](int64_t begin, int64_t end) {
        for (int64_t gj = begin; gj < end; ++gj) im2col_row(n, r0, nrows, gj, col.data());
      });
      // one MR x NR tile per task
      parallel_for(s.groups * oc_tiles * j_tiles, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, L * MR * NR)),
                   [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) tile_task(n, r0, L, t, col.data(), gw);
      });
    }
  }
}

template void conv_backward_weight_avx2<float>(const ConvShape&, const float*, const float*, float*, const PackedGemm&);
template void conv_backward_weight_avx2<double>(const ConvShape&, const double*, const double*, double*,
                                                 const PackedGemm&);

}  // namespace medconv
