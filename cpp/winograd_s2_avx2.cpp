// 3x3 stride-2 convolution as Winograd F(4x4, 2x2) over the four stride phases, AVX2+FMA, float32
// (see winograd_s2_avx2.h).
//
// Along one axis, output o of a 3x3 stride-2 conv with leading padding pad reads x[2o - pad + k],
// k = 0, 1, 2. With the phases E[a] = x[2a - pad] and O[a] = x[2a - pad + 1]:
//   y[o] = w0 E[o] + w2 E[o + 1] + w1 O[o],
// a 2-tap stride-1 correlation on E and a 1-tap one on O. In 2D the conv is the sum over the four
// phase pairs (E or O rows) x (E or O columns) of 2x2 stride-1 correlations, a missing tap being
// zero, each computed by F(4x4, 2x2) with the points 0, 1, -1, 2, inf:
//   y(4x4 tile) = A^T [ sum over phase pairs and channels (G g G^T) .* (B^T d B) ] A,  d: 5x5.
// A 1-tap filter's transform is zero at the point inf, so the transformed element (a, b) takes O
// rows only where a is finite and O columns only where b is: 16 elements sum over 4 phase pairs,
// 8 over 2 and one over 1, 81 products per channel and 4x4 tile against 144 for the direct sum.
//
// Depth (3D convs) runs direct: output plane od sums over kd the 2D products of input plane
// od*sd - pd + kd*dd, a longer GEMM reduction (K_xi = KD * (its phase pairs) * Cg).
//
// Per call the filters are transformed straight into the packed A matrices of a GEMM over 16-column
// panels (packed_gemm.h's panel16_gemm: AVX2's or AVX-512's), one [OCg x K_xi] matrix per element
// xi, rows (kd, phase pair, ic). Per block of tiles (one output plane, 2-4 panels of 16 tiles): the
// input transform (8 tiles of a tile row in the lanes; one 8x8 transpose per input row gives all 9
// columns of the 8 tiles, both column phases) writes V[xi] as packed B panels, the 25 GEMMs
// M[xi] = U[xi] V[xi] run through its gemm_columns, and the output transform adds the bias, applies
// the ReLU and writes the 4x4 tiles. As in winograd_avx2.cpp, every output gets one fixed sequence
// of operations, so results do not depend on the blocking or the thread count.
#include "winograd_s2_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "aligned.h"
#include "lanes_avx2.h"
#include "packed_gemm.h"
#include "parallel.h"
#include "winograd_transforms_avx2.h"

namespace medconv {
namespace {

constexpr int kXi = 25;               // transformed tile elements: 5 x 5
constexpr int kInf = 4;               // the point inf along an axis
constexpr int64_t kPanel = 16;  // tiles per GEMM column panel
constexpr int64_t kHalfLanes = 8;
static_assert(kPanel == 2 * kHalfLanes, "a panel is two halves of 8 tiles");

// Phase pairs: 0 = (E rows, E columns), 1 = (E, O), 2 = (O, E), 3 = (O, O). pos[xi][pair] is the
// pair's place among the pairs element xi sums over (its K rows pos * Cg + ic), or -1.
struct Elements {
  int count[kXi];
  int pos[kXi][4];
  Elements() {
    for (int xi = 0; xi < kXi; ++xi) {
      const int a = xi / 5, b = xi % 5;
      count[xi] = 0;
      for (int pair = 0; pair < 4; ++pair) {
        const bool odd_rows = pair >= 2, odd_cols = pair & 1;
        pos[xi][pair] = (odd_rows && a == kInf) || (odd_cols && b == kInf) ? -1 : count[xi]++;
      }
    }
  }
};
const Elements kElements;

// ---------------------------------------------------------------------------------------- 1D transforms

// t = B^T d: the 5 rows of B^T (n = 5), or the 4 of the finite points, which do not read d[4].
//   B^T = [2 -1 -2 1 0; 0 -2 -1 1 0; 0 2 -3 1 0; 0 -1 0 1 0; 0 2 -1 -2 1]
template <int n>
inline void bt(const __m256* d, int ds, __m256* t, int ts) {
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds];
  const __m256 d31 = _mm256_sub_ps(d3, d1), d32 = _mm256_sub_ps(d3, d2);
  t[0] = _mm256_fmadd_ps(two, _mm256_sub_ps(d0, d2), d31);
  t[ts] = _mm256_fnmadd_ps(two, d1, d32);
  t[2 * ts] = _mm256_fmadd_ps(two, _mm256_sub_ps(d1, d2), d32);
  t[3 * ts] = d31;
  if constexpr (n == 5) t[4 * ts] = _mm256_fmadd_ps(two, _mm256_sub_ps(d1, d3), _mm256_sub_ps(d[4 * ds], d2));
}

// o = A^T m: 5 -> 4.  A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1]
inline void at5(const __m256* m, int ms, __m256* o, int os) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
  const __m256 s12 = _mm256_add_ps(m[ms], m[2 * ms]), d12 = _mm256_sub_ps(m[ms], m[2 * ms]);
  const __m256 m3 = m[3 * ms];
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), m3);
  o[os] = _mm256_fmadd_ps(two, m3, d12);
  o[2 * os] = _mm256_fmadd_ps(four, m3, s12);
  o[3 * os] = _mm256_add_ps(_mm256_fmadd_ps(eight, m3, d12), m[4 * ms]);
}

// u = G g: 2 taps -> 5.  G = [1/2 0; -1/2 -1/2; -1/6 1/6; 1/6 1/3; 0 1]
inline void g2(__m256 g0, __m256 g1, __m256* u, int us) {
  const __m256 half = _mm256_set1_ps(0.5f), six = _mm256_set1_ps(6.0f);
  u[0] = _mm256_mul_ps(half, g0);
  u[us] = _mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_add_ps(g0, g1));
  u[2 * us] = _mm256_div_ps(_mm256_sub_ps(g1, g0), six);
  u[3 * us] = _mm256_div_ps(_mm256_fmadd_ps(_mm256_set1_ps(2.0f), g1, g0), six);
  u[4 * us] = g1;
}

// ---------------------------------------------------------------------------------------- context

struct Ctx {
  const ConvShape* s = nullptr;
  int64_t Cg = 0, OCg = 0, HW = 0, DHW = 0, OHW = 0;
  int64_t tH = 0, tW = 0, hW = 0;  // tile rows and columns per image, halves (8 tiles) per tile row
  int64_t Kd[kXi];                 // K rows of element xi per tap plane kd: its phase pairs * Cg
  int64_t K[kXi];                  // GEMM depth of element xi: KD * Kd[xi], rows kd * Kd + pos * Cg + ic
  int64_t aoff[kXi + 1];           // packed A of element xi within a group's
  const float* x = nullptr;
  const PackedGemm* gemm = nullptr;
  const float* Ap = nullptr;       // [G][aoff[kXi]]
  const float* bias = nullptr;
  float* y = nullptr;
  bool relu = false;
};

// ---------------------------------------------------------------------------------------- filter transform

// The packed A rows of the mr-channel panel `panel` of group g: U[xi][oc][kd * Kd + pos * Cg + ic]
// for the panel's channels (rows past OCg zero), 8 channels at a time in the lanes.
void transform_filters(const Ctx& cx, const float* w, int64_t g, int64_t panel, float* Ap) {
  const int64_t Cg = cx.Cg, OCg = cx.OCg, KD = cx.s->KD, MR = cx.gemm->mr;
  const int64_t rows = std::min<int64_t>(MR, OCg - panel * MR);
  float* Ag = Ap + g * cx.aoff[kXi];
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t kd = 0; kd < KD; ++kd)
  for (int64_t ic = 0; ic < Cg; ++ic)
  for (int64_t r0 = 0; r0 < MR; r0 += 8) {
    // tap[t] lane r: tap t = 3 kh + kw of channel row r0 + r of the panel (rows past OCg: 0)
    __m256 tap[9];
    load_filter_taps(w + (((g * OCg + panel * MR + r0) * Cg + ic) * KD + kd) * 9, Cg * KD * 9, rows - r0, tap);
    // The 2x2 filter of each phase pair: E rows take kh = 0, 2, O rows kh = 1 and a zero tap; the
    // same along W.
    const __m256 pair_taps[4][2][2] = {{{tap[0], tap[2]}, {tap[6], tap[8]}},
                                       {{tap[1], zero}, {tap[7], zero}},
                                       {{tap[3], tap[5]}, {zero, zero}},
                                       {{tap[4], zero}, {zero, zero}}};
    for (int pair = 0; pair < 4; ++pair) {
      __m256 gw[2][5], U[kXi];
      for (int i = 0; i < 2; ++i) g2(pair_taps[pair][i][0], pair_taps[pair][i][1], gw[i], 1);  // along W
      for (int b = 0; b < 5; ++b) g2(gw[0][b], gw[1][b], U + b, 5);                          // along H
      for (int xi = 0; xi < kXi; ++xi) {
        const int pos = kElements.pos[xi][pair];
        if (pos < 0) continue;
        float* d = Ag + cx.aoff[xi] + (panel * cx.K[xi] + kd * cx.Kd[xi] + pos * Cg + ic) * MR + r0;
        if (MR - r0 >= 8) {
          _mm256_storeu_ps(d, U[xi]);
        } else {  // 6 floats (AVX2's tile)
          _mm_storeu_ps(d, _mm256_castps256_ps128(U[xi]));
          _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(U[xi], 1));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------- input transform

// 8 tiles tw0 + l, l < 8, of tile row th of image n: where their rows and columns come from, and
// where their 81 transformed values of channel 0 and tap plane 0 go in V (channel ic of tap plane
// kd: + 16 (kd * Kd[xi] + ic)).
struct Half {
  int64_t n = 0, th = 0, tw0 = 0;
  int64_t rowoff[9];  // input row 8 th - pad_h + i, i = 0..8, times W; -1 outside the image
  int64_t c0 = 0;     // input column of lane 0's column 0: lane l reads columns c0 + 8 l + [0, 9)
  __m256i mask[8];    // vector k covers columns c0 + 8k + [0, 8)
  bool full = true;   // all 8 vectors inside the image
  bool extra = false;  // column c0 + 64 (lane 7's column 8) inside the image
  // dst[9 c + a]: transformed column c (0..4 of the E columns, 5..8 of the O columns), row a
  // (0..4 of the E rows, 5..8 of the O rows)
  float* dst[81];
  int64_t kd_step[81];  // 16 Kd[xi] of the value's element
};

// V: per element xi, [panel][K[xi]][16] from V + voff[xi], a block's 16-tile panels.
void make_half(const Ctx& cx, int64_t index, float* V, const int64_t* voff, int64_t panel, int lanes, Half& h) {
  const ConvShape& s = *cx.s;
  h.tw0 = (index % cx.hW) * kHalfLanes;
  h.th = (index / cx.hW) % cx.tH;
  h.n = index / (cx.hW * cx.tH);
  for (int i = 0; i < 9; ++i) {
    const int64_t ih = 8 * h.th - s.pad[1] + i;
    h.rowoff[i] = ih >= 0 && ih < s.H ? ih * s.W : -1;
  }
  h.c0 = 8 * h.tw0 - s.pad[2];
  h.full = true;
  for (int k = 0; k < 8; ++k) {
    alignas(32) int32_t m[8];
    for (int q = 0; q < 8; ++q) {
      const int64_t col = h.c0 + 8 * k + q;
      m[q] = col >= 0 && col < s.W ? -1 : 0;
      h.full = h.full && m[q];
    }
    h.mask[k] = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
  }
  h.extra = h.c0 + 64 >= 0 && h.c0 + 64 < s.W;
  for (int c = 0; c < 9; ++c)
    for (int a = 0; a < 9; ++a) {
      const int odd_cols = c >= 5, odd_rows = a >= 5;
      const int xi = 5 * (odd_rows ? a - 5 : a) + (odd_cols ? c - 5 : c);
      const int64_t k = kElements.pos[xi][2 * odd_rows + odd_cols] * cx.Cg;
      h.dst[9 * c + a] = V + voff[xi] + (panel * cx.K[xi] + k) * kPanel + lanes;
      h.kd_step[9 * c + a] = cx.Kd[xi] * kPanel;
    }
}

// The 81 transformed values of channel ic in tap plane kd (its input plane at `plane`) for the 8
// tiles of h.
template <bool full>
void input_transform(const Half& h, const float* plane, int64_t kd, int64_t ic) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256i rot1 = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  // Tw[i][c]: input row i of the tiles along W: c = 0..4 the E columns' B^T d, 5..8 the O columns'.
  __m256 Tw[9][9];
  for (int i = 0; i < 9; ++i) {
    if (h.rowoff[i] < 0) {
      for (int c = 0; c < 9; ++c) Tw[i][c] = zero;
      continue;
    }
    const float* p = plane + h.rowoff[i] + h.c0;
    __m256 v[8], T[8];
    for (int k = 0; k < 8; ++k) v[k] = full ? _mm256_loadu_ps(p + 8 * k) : _mm256_maskload_ps(p + 8 * k, h.mask[k]);
    avx2::transpose8(v, T);  // T[j] lane l = p[8 l + j]
    const __m256 e = h.extra ? _mm256_broadcast_ss(p + 64) : zero;
    const __m256 dE[5] = {T[0], T[2], T[4], T[6], _mm256_blend_ps(_mm256_permutevar8x32_ps(T[0], rot1), e, 0x80)};
    const __m256 dO[4] = {T[1], T[3], T[5], T[7]};
    bt<5>(dE, 1, Tw[i], 1);
    bt<4>(dO, 1, Tw[i] + 5, 1);
  }
  const int64_t off = ic * kPanel;
  for (int c = 0; c < 9; ++c) {  // along H: E rows 0, 2, .., 8 and O rows 1, 3, 5, 7
    __m256 u[9];
    bt<5>(&Tw[0][c], 18, u, 1);
    bt<4>(&Tw[1][c], 18, u + 5, 1);
    for (int a = 0; a < 9; ++a) _mm256_store_ps(h.dst[9 * c + a] + kd * h.kd_step[9 * c + a] + off, u[a]);
  }
}

// ---------------------------------------------------------------------------------------- one block

// Where a block's transformed input lives: element xi's packed B panels from V + voff[xi].
struct VLayout {
  float* V = nullptr;
  int64_t voff[kXi + 1];
};

// Group g, output plane od, halves [h0, h0 + nh) of the group's (n, th, 8-tile column group)
// enumeration.
struct Item {
  int64_t g, od, h0, nh;
};

// The input plane of tap plane kd for output plane od, or -1 where x has none (depth padding).
inline int64_t input_plane(const ConvShape& s, int64_t od, int64_t kd) {
  const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
  return id >= 0 && id < s.D ? id : -1;
}

constexpr int64_t kMaxPanels = 12;  // 16 * 12 columns: one GEMM column block
static_assert(kPanel * kMaxPanels <= kPanel16MinNc, "a block's columns fit one GEMM column block");

// Part `part` of `parts` of the input rows of block `it`, prefetched: the input transform does too
// little work per cache line to hide its misses, while the GEMMs leave the loads idle.
void prefetch_block_input(const Ctx& cx, const Item& it, int part, int parts) {
  const ConvShape& s = *cx.s;
  const int64_t units = s.KD * cx.Cg * it.nh * 9;  // (kd, ic, half, row)
  for (int64_t u = units * part / parts; u < units * (part + 1) / parts; ++u) {
    const int64_t i = u % 9, h = (u / 9) % it.nh, ic = (u / (9 * it.nh)) % cx.Cg, kd = u / (9 * it.nh * cx.Cg);
    const int64_t id = input_plane(s, it.od, kd);
    if (id < 0) continue;
    const int64_t index = it.h0 + h;
    const int64_t tw0 = (index % cx.hW) * kHalfLanes, th = (index / cx.hW) % cx.tH, n = index / (cx.hW * cx.tH);
    const int64_t ih = 8 * th - s.pad[1] + i;
    if (ih < 0 || ih >= s.H) continue;
    const int64_t c0 = std::max<int64_t>(0, 8 * tw0 - s.pad[2]);
    const char* p =
        reinterpret_cast<const char*>(cx.x + (((n * s.C + it.g * cx.Cg + ic) * s.D + id) * s.H + ih) * s.W + c0);
    for (int line = 0; line < 5; ++line) _mm_prefetch(p + 64 * line, _MM_HINT_T1);
  }
}

void run_item(const Ctx& cx, const Item& it, const Item* next, std::atomic<bool>& bad) {
  const ConvShape& s = *cx.s;
  const int64_t Cg = cx.Cg, OCg = cx.OCg;
  const int64_t panels = (it.nh + 1) / 2;
  VLayout vl;
  vl.voff[0] = 0;
  // + a cache line per element: the 25 elements of a tile are written together and should not all
  // fall into the same cache sets
  for (int xi = 0; xi < kXi; ++xi) vl.voff[xi + 1] = vl.voff[xi] + panels * cx.K[xi] * kPanel + 16;
  vl.V = thread_scratch<float>(vl.voff[kXi], 1);
  const int64_t ldM = kPanel * panels, moc_stride = kXi * ldM;  // M[oc][xi][cols]
  float* M = thread_scratch<float>(OCg * moc_stride, 2);

  // 1. Input transform, tap plane by plane and channel by channel, all tiles of the block. The
  // rows of tap planes outside the input are zeros, as is the last panel's second half when empty
  // (not whatever the scratch held).
  Half halves[2 * kMaxPanels];
  for (int64_t h = 0; h < it.nh; ++h)
    make_half(cx, it.h0 + h, vl.V, vl.voff, h / 2, static_cast<int>((h % 2) * kHalfLanes), halves[h]);
  const __m256 zero = _mm256_setzero_ps();
  auto zero_rows = [&](int64_t k0, int64_t k1, int64_t h0, int64_t h1) {  // V rows [k0, k1) of halves [h0, h1)
    for (int xi = 0; xi < kXi; ++xi)
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t k = k0 * cx.Kd[xi]; k < k1 * cx.Kd[xi]; ++k)
          _mm256_store_ps(vl.V + vl.voff[xi] + ((h / 2) * cx.K[xi] + k) * kPanel + (h % 2) * kHalfLanes, zero);
  };
  const float* xg = cx.x + it.g * Cg * cx.DHW;
  for (int64_t kd = 0; kd < s.KD; ++kd) {
    const int64_t id = input_plane(s, it.od, kd);
    if (id < 0) {
      zero_rows(kd, kd + 1, 0, it.nh);
      continue;
    }
    for (int64_t ic = 0; ic < Cg; ++ic)
      for (int64_t h = 0; h < it.nh; ++h) {
        const float* plane = xg + (halves[h].n * s.C + ic) * cx.DHW + id * cx.HW;
        if (halves[h].full) input_transform<true>(halves[h], plane, kd, ic);
        else input_transform<false>(halves[h], plane, kd, ic);
      }
  }
  if (it.nh % 2) zero_rows(0, s.KD, it.nh, it.nh + 1);

  // 2. The 25 GEMMs M[xi] (OCg x 16 panels) = U[xi] (OCg x K[xi]) * V[xi]. V[xi] is already the
  // packed B of gemm_columns when K[xi] <= KC (read in place: its work buffer, a packer that does
  // nothing); deeper ones are copied a K slice at a time.
  const float* Ag = cx.Ap + it.g * cx.aoff[kXi];
  int64_t cur_xi = 0;
  const PackedGemm& gemm = *cx.gemm;
  const gemm_common::PackB noop = [](int64_t, int64_t, int64_t, int64_t, float*) {};
  const gemm_common::PackB copy = [&](int64_t pc, int64_t kc, int64_t, int64_t, float* Bp) {
    for (int64_t p = 0; p < panels; ++p)
      std::memcpy(Bp + p * kc * kPanel, vl.V + vl.voff[cur_xi] + (p * cx.K[cur_xi] + pc) * kPanel,
                  kc * kPanel * sizeof(float));
  };
  float* work = nullptr;
  const gemm_common::Epilogue ep;
  for (int xi = 0; xi < kXi; ++xi) {
    if (next) prefetch_block_input(cx, *next, xi, kXi);
    float* C = M + xi * ldM;
    if (cx.K[xi] <= gemm.kc) {
      gemm.gemm_columns(OCg, cx.K[xi], Ag + cx.aoff[xi], noop, 0, ldM, C, moc_stride, ep, vl.V + vl.voff[xi]);
    } else {
      if (!work) work = thread_scratch<float>(gemm.kc * gemm.nc, 0);
      cur_xi = xi;
      gemm.gemm_columns(OCg, cx.K[xi], Ag + cx.aoff[xi], copy, 0, ldM, C, moc_stride, ep, work);
    }
  }

  // 3. Output transform, bias, ReLU, stores; channel by channel, all tiles of the block.
  __m256 chk = zero;  // OR of (o - o): nonzero bits iff some output is Inf or NaN
  for (int64_t oc = 0; oc < OCg; ++oc) {
    const __m256 b = _mm256_set1_ps(cx.bias ? cx.bias[it.g * OCg + oc] : 0.0f);
    const float* mp = M + oc * moc_stride;
    for (int64_t h = 0; h < it.nh; ++h) {
      const Half& hf = halves[h];
      __m256 m[kXi], S[20], O[16];
      for (int xi = 0; xi < kXi; ++xi) m[xi] = _mm256_load_ps(mp + xi * ldM + h * kHalfLanes);
      // The bias: A^T's column 1 (the point 1) is all ones, so M[1][1] adds to all 16 outputs.
      m[6] = _mm256_add_ps(m[6], b);
      for (int a = 0; a < 5; ++a) at5(m + a * 5, 1, S + a * 4, 1);  // along W: S[a][j]
      for (int j = 0; j < 4; ++j) at5(S + j, 4, O + j, 4);          // along H: O[i][j]
      avx2::check_and_relu(O, chk, cx.relu);
      float* yt = cx.y + ((hf.n * s.OC + it.g * OCg + oc) * s.OD + it.od) * cx.OHW + (4 * hf.th) * s.OW + 4 * hf.tw0;
      const int rows = static_cast<int>(std::min<int64_t>(4, s.OH - 4 * hf.th));
      const int64_t cols = std::min<int64_t>(32, s.OW - 4 * hf.tw0);
      for (int i = 0; i < rows; ++i) {
        __m256 q[4];
        avx2::interleave4<false>(O + 4 * i, q);
        float* d = yt + i * s.OW;
        if (cols == 32) {
          for (int v = 0; v < 4; ++v) _mm256_storeu_ps(d + 8 * v, q[v]);
        } else {
          alignas(32) float tmp[32];
          for (int v = 0; v < 4; ++v) _mm256_store_ps(tmp + 8 * v, q[v]);
          std::memcpy(d, tmp, cols * sizeof(float));
        }
      }
    }
  }
  if (!_mm256_testz_si256(_mm256_castps_si256(chk), _mm256_castps_si256(chk)))
    bad.store(true, std::memory_order_relaxed);
}

}  // namespace

bool winograd_s2_applicable(const ConvShape& s) {
  if (s.KH != 3 || s.KW != 3 || s.stride[1] != 2 || s.stride[2] != 2 || s.dilation[1] != 1 || s.dilation[2] != 1)
    return false;
  if (s.N == 0 || s.C == 0 || s.OC == 0 || s.OD == 0 || s.OH == 0 || s.OW == 0) return false;
  const char* algo = std::getenv("MEDCONV_CONV_ALGO");
  if (algo && std::strcmp(algo, "winograd") == 0) return true;
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  if (Cg < 8 || OCg < 8) return false;
  // 81 products per 4x4 tile and channel against 144 for a direct sum: most of the 8 tiles of a
  // lane group must be real, and the tiles well filled.
  const int64_t tH = (s.OH + 3) / 4, tW = (s.OW + 3) / 4, hW = (tW + 7) / 8;
  if (4 * tW < 3 * 8 * hW) return false;
  if (tH * tW * 16 * 3 > 4 * s.OH * s.OW) return false;
  // The transformed filters (81 x OCg x Cg floats a group) are made once per call and read once per
  // block: deep layers need many tiles to pay for them (256 -> 256 channels, 21 MB: 1.0-1.1x the
  // GEMM's speed at 128 tiles, 1.3x at 256; 128 -> 128, 5 MB: 1.0x at 64, 1.2-1.3x at 128).
  const int64_t all_tiles = s.N * s.OD * tH * tW;
  const int64_t a_bytes = 81 * 4 * s.groups * Cg * s.KD * OCg;
  return all_tiles >= 32 && all_tiles * (1 << 20) >= 12 * a_bytes;
}

bool conv_winograd_s2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                          bool relu, const PackedGemm& gemm) {
  Ctx cx;
  cx.s = &s;
  cx.gemm = &gemm;
  cx.Cg = s.C / s.groups;
  cx.OCg = s.OC / s.groups;
  cx.HW = s.H * s.W;
  cx.DHW = s.D * cx.HW;
  cx.OHW = s.OH * s.OW;
  cx.tH = (s.OH + 3) / 4;
  cx.tW = (s.OW + 3) / 4;
  cx.hW = (cx.tW + kHalfLanes - 1) / kHalfLanes;
  cx.x = x;
  cx.bias = bias;
  cx.y = y;
  cx.relu = relu;
  cx.aoff[0] = 0;
  for (int xi = 0; xi < kXi; ++xi) {
    cx.Kd[xi] = kElements.count[xi] * cx.Cg;
    cx.K[xi] = s.KD * cx.Kd[xi];
    cx.aoff[xi + 1] = cx.aoff[xi] + gemm.packed_a_size(cx.OCg, cx.K[xi]);
  }

  const int64_t G = s.groups;
  const int64_t a_panels = (cx.OCg + gemm.mr - 1) / gemm.mr;
  float* Ap = thread_scratch<float>(G * cx.aoff[kXi], 3);
  cx.Ap = Ap;
  parallel_for(G * a_panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) transform_filters(cx, w, i / a_panels, i % a_panels, Ap);
  });

  // Blocks of P panels (2P lane groups of 8 tiles): 2, or 4 where the transformed filters outgrow
  // the caches (> 4 MB a group), so that blocks read them fewer times. P shrinks until the blocks
  // share out evenly among the threads; the split changes no result.
  const int64_t P0 = cx.aoff[kXi] > (1 << 20) ? 4 : 2;
  const int64_t threads = get_num_threads();
  const int64_t halves = s.N * cx.tH * cx.hW;
  std::vector<Item> items;
  for (int64_t P = P0;; P = std::max<int64_t>(1, P / 2)) {
    items.clear();
    for (int64_t g = 0; g < G; ++g)
      for (int64_t od = 0; od < s.OD; ++od)
        for (int64_t h0 = 0; h0 < halves; h0 += 2 * P) items.push_back(Item{g, od, h0, std::min(2 * P, halves - h0)});
    const int64_t n = static_cast<int64_t>(items.size());
    if (P == 1 || n >= 4 * threads || (n >= threads && n % threads == 0)) break;
  }
  std::atomic<bool> bad(false);
  parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) run_item(cx, items[i], i + 1 < end ? &items[i + 1] : nullptr, bad);
  });
  return !bad.load();
}

}  // namespace medconv
