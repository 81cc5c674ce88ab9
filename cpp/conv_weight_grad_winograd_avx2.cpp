// Convolution weight gradient of 3x3 stride-1 convs through Winograd F(3x3, 4x4), float32, AVX2
// transforms and a packed GEMM (packed_gemm.h: AVX2's or AVX-512's):
//   gw[oc, ic] (3x3) = sum over 4x4 tiles of gy of the valid correlation of the tile's 6x6 input
//   window with the tile: G^T [ (A g A^T) .* (B^T d B) ] G,
// with winograd_avx2.cpp's F(4x4, 3x3) matrices swapped (A^T: 4x6 output transform, G: 6x3 filter
// transform, B^T: 6x6 input transform; the transposition principle). Summed over tiles this is 36
// GEMMs M[xi][oc][ic] = sum_t U[xi][oc][t] V[xi][ic][t], with U = A g A^T of the gy tiles and
// V = B^T d B of the x windows: 4x fewer products than the direct gradient.
//
// Work is cut into chunks of whole tile rows (fixed by the shape): each chunk transforms its tiles
// (8 tiles of a tile row in the lanes), runs its 36 GEMMs into its own partial M, and the partials
// are added in chunk order, so the bits do not depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "aligned.h"
#include "lanes_avx2.h"
#include "winograd_transforms_avx2.h"
#include "memory.h"
#include "nn_kernels.h"
#include "packed_gemm.h"
#include "packed_rows_avx2.h"
#include "vecmath_avx2.h"
#include "parallel.h"

namespace medconv {
namespace {

constexpr int kXi = 36;
constexpr int64_t kMaxChunkTiles = 256;
constexpr int64_t kPartialBudget = int64_t{64} << 20;  // bytes of partial M over all chunks

// u = A g: the cubic g0 + g1 t + g2 t^2 + g3 t^3 at t = 0, 1, -1, 2, -2 and its leading coefficient.
inline void a4(const __m256* g, int gs, __m256* u, int us) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
  const __m256 g0 = g[0], g1 = g[gs], g2 = g[2 * gs], g3 = g[3 * gs];
  const __m256 even = _mm256_add_ps(g0, g2), odd = _mm256_add_ps(g1, g3);
  const __m256 even2 = _mm256_fmadd_ps(four, g2, g0), odd2 = _mm256_fmadd_ps(eight, g3, _mm256_mul_ps(two, g1));
  u[0] = g0;
  u[us] = _mm256_add_ps(even, odd);
  u[2 * us] = _mm256_sub_ps(even, odd);
  u[3 * us] = _mm256_add_ps(even2, odd2);
  u[4 * us] = _mm256_sub_ps(even2, odd2);
  u[5 * us] = g3;
}

// o = G^T m: 6 -> 3 (G: winograd_avx2.cpp's g3)
inline void gt6(const __m256* m, int ms, __m256* o, int os) {
  const __m256 c4 = _mm256_set1_ps(1.0f / 4), c6 = _mm256_set1_ps(1.0f / 6), c12 = _mm256_set1_ps(1.0f / 12),
               c24 = _mm256_set1_ps(1.0f / 24);
  const __m256 s12 = _mm256_add_ps(m[ms], m[2 * ms]), d12 = _mm256_sub_ps(m[2 * ms], m[ms]);
  const __m256 s34 = _mm256_add_ps(m[3 * ms], m[4 * ms]), d34 = _mm256_sub_ps(m[3 * ms], m[4 * ms]);
  o[0] = _mm256_fmadd_ps(m[0], c4, _mm256_fmsub_ps(s34, c24, _mm256_mul_ps(s12, c6)));
  o[os] = _mm256_fmadd_ps(d12, c6, _mm256_mul_ps(d34, c12));
  o[2 * os] = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(s34, s12), c6), m[5 * ms]);
}

// Tile rows per chunk, a function of the shape only: about 8 chunks, at most kMaxChunkTiles tiles
// each (the per-thread transformed tiles stay bounded).
struct Chunking {
  int64_t tWp, rows, R, chunks;
};
Chunking chunking(const ConvShape& s) {
  Chunking c;
  c.tWp = ((s.OW + 3) / 4 + 7) / 8 * 8;
  c.rows = s.N * ((s.OH + 3) / 4);
  c.R = std::min(std::max<int64_t>(1, (c.rows + 7) / 8), std::max<int64_t>(1, kMaxChunkTiles / c.tWp));
  c.chunks = (c.rows + c.R - 1) / c.R;
  return c;
}

struct Ctx {
  const ConvShape* s;
  int64_t Cg, OCg, tH, tWp, rows, R, chunks, T;  // T: tiles per chunk (R tile rows of tWp)
  int64_t row_len;                                     // floats per padded input / gradient row
  // floats between the transformed elements xi of U and of V: a cache line on top of the matrix, so
  // that a tile's 36 stores do not all fall into the same cache sets
  int64_t u_stride, v_stride;
};

// The transformed tiles of chunk c (tile rows [c R, c R + R) of the (n, th) enumeration): for
// channel ch and element xi, U[xi][oc][t] (from gy) and V[xi][ic][t] (from x), t = r tWp + tw; the
// tiles past tW (and the rows past the last) are zero.
void transform_chunk(const Ctx& cx, const float* x, const float* gy, int64_t g, int64_t c, float* U, float* V,
                     float* row_buf) {
  const ConvShape& s = *cx.s;
  const int64_t T = cx.T, L = cx.row_len, groups8 = cx.tWp / 8;
  const int64_t ph = s.pad[1], pw = s.pad[2];
  const int64_t valid = std::min(cx.R, cx.rows - c * cx.R);  // tile rows with tiles (all but the last chunk's tail)
  if (valid < cx.R) {
    auto zero_tail = [&](float* m, int64_t stride, int64_t channels) {
      for (int xi = 0; xi < kXi; ++xi)
        for (int64_t ch = 0; ch < channels; ++ch)
          std::fill(m + xi * stride + ch * T + valid * cx.tWp, m + xi * stride + (ch + 1) * T, 0.0f);
    };
    zero_tail(U, cx.u_stride, cx.OCg);
    zero_tail(V, cx.v_stride, cx.Cg);
  }
  for (int64_t r = 0; r < valid; ++r) {
    const int64_t row = c * cx.R + r;
    const int64_t n = row / cx.tH, th = row % cx.tH;
    // gy: the 4 rows of the tile row, read in place where they fill the tiles, else copied with
    // zeros past OH and OW
    for (int64_t oc = 0; oc < cx.OCg; ++oc) {
      const float* src = gy + ((n * s.OC + g * cx.OCg + oc) * s.OH) * s.OW;
      const float* grow[4];
      for (int u = 0; u < 4; ++u) {
        float* dst = row_buf + u * L;
        const int64_t oh = 4 * th + u;
        if (oh < s.OH && s.OW == 4 * cx.tWp) {
          grow[u] = src + oh * s.OW;
        } else if (oh < s.OH) {
          std::copy(src + oh * s.OW, src + oh * s.OW + s.OW, dst);
          std::fill(dst + s.OW, dst + 4 * cx.tWp, 0.0f);
          grow[u] = dst;
        } else {
          std::fill(dst, dst + 4 * cx.tWp, 0.0f);
          grow[u] = dst;
        }
      }
      for (int64_t q = 0; q < groups8; ++q) {
        __m256 gv[16], w[24], uv[kXi];  // gv[u][v], w[u][b] = (g A^T)[u][b], uv[a][b]
        for (int u = 0; u < 4; ++u) {
          const float* p = grow[u] + 32 * q;
          avx2::deinterleave4(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16),
                              _mm256_loadu_ps(p + 24), gv + 4 * u);
        }
        for (int u = 0; u < 4; ++u) a4(gv + 4 * u, 1, w + 6 * u, 1);
        for (int b = 0; b < 6; ++b) a4(w + b, 6, uv + b, 6);
        float* dst = U + oc * T + r * cx.tWp + 8 * q;
        for (int xi = 0; xi < kXi; ++xi) _mm256_storeu_ps(dst + xi * cx.u_stride, uv[xi]);
      }
    }
    // x: the 6 input rows of the tile row as rows from input column -pw: in place for the groups of
    // tiles inside the input, else from a padded copy (made on first use)
    for (int64_t ic = 0; ic < cx.Cg; ++ic) {
      const float* src = x + ((n * s.C + g * cx.Cg + ic) * s.H) * s.W;
      bool copied[6] = {false, false, false, false, false, false};
      auto padded_row = [&](int i) {  // column j of the copy is input column j - pw
        float* dst = row_buf + i * L;
        if (copied[i]) return static_cast<const float*>(dst);
        copied[i] = true;
        const int64_t ih = 4 * th + i - ph;
        if (ih >= 0 && ih < s.H) {  // L >= W + 2 pw + 8
          std::fill(dst, dst + pw, 0.0f);
          std::copy(src + ih * s.W, src + ih * s.W + s.W, dst + pw);
          std::fill(dst + pw + s.W, dst + L, 0.0f);
        } else {
          std::fill(dst, dst + L, 0.0f);
        }
        return static_cast<const float*>(dst);
      };
      for (int64_t q = 0; q < groups8; ++q) {
        __m256 dv[36], t[36], vv[kXi];  // dv[i][j], t[i][b] = (d B)[i][b], vv[a][b]
        const int64_t c0 = 32 * q - pw;  // the group's first input column
        for (int i = 0; i < 6; ++i) {
          const int64_t ih = 4 * th + i - ph;
          const bool inside = ih >= 0 && ih < s.H && c0 >= 0 && c0 + 36 <= s.W;
          const float* p = inside ? src + ih * s.W + c0 : padded_row(i) + 32 * q;
          __m256 hi[4];
          avx2::deinterleave4(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16),
                              _mm256_loadu_ps(p + 24), dv + 6 * i);
          avx2::deinterleave4(_mm256_loadu_ps(p + 4), _mm256_loadu_ps(p + 12), _mm256_loadu_ps(p + 20),
                              _mm256_loadu_ps(p + 28), hi);
          dv[6 * i + 4] = hi[0];
          dv[6 * i + 5] = hi[1];
        }
        for (int i = 0; i < 6; ++i) bt6(dv + 6 * i, 1, t + 6 * i, 1);
        for (int b = 0; b < 6; ++b) bt6(t + b, 6, vv + b, 6);
        float* dst = V + ic * T + r * cx.tWp + 8 * q;
        for (int xi = 0; xi < kXi; ++xi) _mm256_storeu_ps(dst + xi * cx.v_stride, vv[xi]);
      }
    }
  }
}

// The GEMM's B block (rows [pc, pc + kc), columns [jc, jc + nc)) of B(k, j) = b[j][k], b: [N][K]
// row-major: [ceil(nc / nr)][kc][nr] by 8 x 8 transposes (nr is a multiple of 8; kc, pc too).
void pack_rows_as_b(int nr, const float* b, int64_t N, int64_t K, int64_t pc, int64_t kc, int64_t jc, int64_t nc,
                    float* Bp) {
  for (int64_t p0 = 0; p0 < nc; p0 += nr)
    for (int c0 = 0; c0 < nr; c0 += 8) {
      float* dst = Bp + (p0 / nr) * kc * nr + c0;
      const int64_t j0 = jc + p0 + c0;
      for (int64_t k = 0; k < kc; k += 8) {
        __m256 rows[8], cols[8];
        for (int i = 0; i < 8; ++i)
          rows[i] = j0 + i < N && p0 + c0 + i < nc ? _mm256_loadu_ps(b + (j0 + i) * K + pc + k) : _mm256_setzero_ps();
        avx2::transpose8(rows, cols);
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (k + j) * nr, cols[j]);
      }
    }
}

}  // namespace

bool conv_weight_grad_winograd_applies(const ConvShape& s) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  const bool geometry = s.KD == 1 && s.D == 1 && s.OD == 1 && s.KH == 3 && s.KW == 3 && s.stride[1] == 1 &&
                        s.stride[2] == 1 && s.dilation[1] == 1 && s.dilation[2] == 1 && s.pad[0] == 0 &&
                        s.pad[1] <= 2 && s.pad[2] <= 2 && s.OH >= 4 && s.OW >= 4;
  if (!geometry || Cg < 16 || OCg < 16) return false;
  // Tile rows run in groups of 8 tiles: at most a quarter of them padding (16x16 outputs, 4 tiles
  // padded to 8: 1.1x slower than the GEMM at 256 channels; 64x64 and 32x32: 2.8-3x faster).
  const Chunking ch = chunking(s);
  if (4 * (ch.tWp - (s.OW + 3) / 4) > ch.tWp) return false;
  const int64_t tiles = ch.rows * ch.tWp;
  const int64_t partials = ch.chunks * s.groups * kXi * OCg * Cg * 4;  // bytes of all chunks' M
  return tiles >= 64 && partials <= kPartialBudget;
}

bool conv_backward_weight_winograd_f32(const ConvShape& s, const float* x, const float* gy, float* gw,
                                       const PackedGemm& gemm) {
  const Chunking ch = chunking(s);
  Ctx cx;
  cx.s = &s;
  cx.Cg = s.C / s.groups;
  cx.OCg = s.OC / s.groups;
  cx.tH = (s.OH + 3) / 4;
  cx.tWp = ch.tWp;
  cx.rows = ch.rows;
  cx.R = ch.R;
  cx.chunks = ch.chunks;
  cx.T = cx.R * cx.tWp;
  cx.row_len = std::max<int64_t>(4 * cx.tWp + 8, s.W + 2 * s.pad[2] + 8);
  const int64_t partial = kXi * cx.OCg * cx.Cg;
  cx.u_stride = cx.OCg * cx.T + 16;
  cx.v_stride = cx.Cg * cx.T + 16;
  const int64_t G = s.groups;
  auto M = call_buffer<float>(G * cx.chunks * partial);  // [g][chunk][xi][oc][ic]
  parallel_for(G * cx.chunks, 1, [&](int64_t begin, int64_t end) {
    float* U = thread_scratch<float>(kXi * (cx.u_stride + cx.v_stride) + cx.row_len * 6, 1);
    float* V = U + kXi * cx.u_stride;
    float* row_buf = V + kXi * cx.v_stride;
    float* Ap = thread_scratch<float>(gemm.packed_a_size(cx.OCg, cx.T), 2);
    float* work = thread_scratch<float>(gemm.kc * gemm.nc, 3);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / cx.chunks, c = task % cx.chunks;
      transform_chunk(cx, x, gy, g, c, U, V, row_buf);
      for (int xi = 0; xi < kXi; ++xi) {
        const float* Vx = V + xi * cx.v_stride;
        pack_rows_as_a(gemm, U + xi * cx.u_stride, cx.T, cx.OCg, cx.T, Ap);
        gemm.gemm_columns(cx.OCg, cx.T, Ap,
                          [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                            pack_rows_as_b(gemm.nr, Vx, cx.Cg, cx.T, pc, kc, jc, nc, Bp);
                          },
                          0, cx.Cg, M.get() + (task * kXi + xi) * cx.OCg * cx.Cg, cx.Cg, gemm_common::Epilogue{},
                          work);
      }
    }
  });
  // M = the chunks' partials in chunk order; gw[oc][ic] = G^T M G, 8 input channels at a time
  bool finite = true;
  std::vector<char> bad(static_cast<size_t>(G * cx.OCg), 0);
  parallel_for(G * cx.OCg, 1, [&](int64_t begin, int64_t end) {
    for (int64_t go = begin; go < end; ++go) {
      const int64_t g = go / cx.OCg, oc = go % cx.OCg;
      const float* base = M.get() + g * cx.chunks * partial + oc * cx.Cg;
      __m256 chk = _mm256_setzero_ps();
      for (int64_t ic0 = 0; ic0 < cx.Cg; ic0 += 8) {
        const int lanes = static_cast<int>(std::min<int64_t>(8, cx.Cg - ic0));
        const __m256i mask = avx2::tail_mask(lanes);
        __m256 m[kXi], t[18], o[9];
        for (int xi = 0; xi < kXi; ++xi) {
          const float* p = base + xi * cx.OCg * cx.Cg + ic0;
          __m256 acc = _mm256_maskload_ps(p, mask);
          for (int64_t c = 1; c < cx.chunks; ++c) acc = _mm256_add_ps(acc, _mm256_maskload_ps(p + c * partial, mask));
          m[xi] = acc;
        }
        for (int b = 0; b < 6; ++b) gt6(m + b, 6, t + b, 6);  // t[a][b], a < 3
        for (int a = 0; a < 3; ++a) gt6(t + 6 * a, 1, o + 3 * a, 1);
        alignas(32) float out[9][8];
        for (int k = 0; k < 9; ++k) {
          _mm256_store_ps(out[k], o[k]);
          chk = _mm256_or_ps(chk, _mm256_sub_ps(o[k], o[k]));
        }
        for (int l = 0; l < lanes; ++l)
          for (int k = 0; k < 9; ++k) gw[((g * cx.OCg + oc) * cx.Cg + ic0 + l) * 9 + k] = out[k][l];
      }
      if (_mm256_movemask_ps(_mm256_cmp_ps(chk, chk, _CMP_UNORD_Q))) bad[go] = 1;
    }
  });
  for (char b : bad) finite = finite && !b;
  return finite;
}

}  // namespace medconv
