// Winograd F(4x4, 3x3) convolution, AVX2+FMA, float32 (see winograd_avx2.h).
//
// Lavin & Gray's F(4x4, 3x3) with the interpolation points 0, 1, -1, 2, -2, inf:
//   y(4x4 tile) = A^T [ (G g G^T) .* (B^T d B) ] A     d: 6x6 input tile, g: 3x3 filter.
// Per call: the filters are transformed (U = G g G^T, 36 values per (oc, ic, kd)) straight into the
// packed A layout of the GEMM (packed_gemm.h's panel16_gemm: AVX2's or AVX-512's), one [OC x C*KD] matrix per
// transformed element xi = 0..35. Then per block of output tiles: the input tiles are transformed
// (V = B^T d B, vectorised over 8 tiles at a time) straight into the packed B layout, the 36
// products M[xi] = U[xi] V[xi] run through its gemm_columns, and the output transform A^T M A adds
// the bias, applies the ReLU and writes the 4x4 tiles (partial at the borders).
//
// Dilation d in (H, W) (stride 1): the outputs at positions p + d*a, a = 0, 1, ..., depend only on
// the inputs at p - pad + d*m, so each of the d x d phase subgrids is an undilated conv, handled by
// index arithmetic in the transforms (see Axis). Dilation 2 along W instead interleaves the two
// phases' tiles in the lanes, so that loads and stores stay whole vectors. Depth (3D convs) runs
// direct: output plane od sums over kd the 2D Winograd products with input plane od*sd - pd + kd*dd,
// which is just a longer GEMM reduction (K = KD * C) over transformed planes stored next to each
// other.
//
// Work splits into blocks of up to 64 tiles (x 8 output planes in 3D), one per parallel_for item;
// a block's transformed input V and products M live in per-thread scratch. The transformed
// input's B panels are passed to gemm_columns as its (already packed) work buffer, with a packer
// that does nothing: this relies on gemm_columns reading B only from `work` after calling the packer.
//
// Every output element gets one fixed sequence of operations whatever the blocking and thread
// split (the transforms are lane-wise, the GEMM reduces each column in the same order), so results
// are bitwise independent of the thread count.
#include "winograd_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "aligned.h"
#include "filter_cache.h"
#include "packed_gemm.h"
#include "lanes_avx2.h"
#include "winograd_transforms_avx2.h"
#include "parallel.h"

namespace medconv {
namespace {

constexpr int kXi = 36;            // transformed tile elements: 6 x 6
constexpr int64_t kPanel = 16;  // tiles per GEMM column panel
constexpr int64_t kMaxPanels = 8;     // panels per block
static_assert(kPanel == 16, "a panel is two halves of 8 lanes");

// ---------------------------------------------------------------------------------------- 1D transforms

// o = A^T m: 6 -> 4.
inline void at6(const __m256* m, int ms, __m256* o, int os) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
  const __m256 s12 = _mm256_add_ps(m[ms], m[2 * ms]), d12 = _mm256_sub_ps(m[ms], m[2 * ms]);
  const __m256 s34 = _mm256_add_ps(m[3 * ms], m[4 * ms]), d34 = _mm256_sub_ps(m[3 * ms], m[4 * ms]);
  o[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
  o[os] = _mm256_fmadd_ps(two, d34, d12);
  o[2 * os] = _mm256_fmadd_ps(four, s34, s12);
  o[3 * os] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), m[5 * ms]);
}

// u = G g: 3 -> 6.
inline void g3(const __m256* g, int gs, __m256* u, int us) {
  const __m256 c4 = _mm256_set1_ps(1.0f / 4), c6 = _mm256_set1_ps(-1.0f / 6), c12 = _mm256_set1_ps(1.0f / 12),
               c24 = _mm256_set1_ps(1.0f / 24), s6 = _mm256_set1_ps(1.0f / 6);
  const __m256 g0 = g[0], g1 = g[gs], g2 = g[2 * gs];
  const __m256 s = _mm256_add_ps(g0, g2);
  u[0] = _mm256_mul_ps(g0, c4);
  u[us] = _mm256_mul_ps(_mm256_add_ps(s, g1), c6);
  u[2 * us] = _mm256_mul_ps(_mm256_sub_ps(s, g1), c6);
  const __m256 p = _mm256_fmadd_ps(g0, c24, _mm256_mul_ps(g2, s6)), q = _mm256_mul_ps(g1, c12);
  u[3 * us] = _mm256_add_ps(p, q);
  u[4 * us] = _mm256_sub_ps(p, q);
  u[5 * us] = g2;
}

// ---------------------------------------------------------------------------------------- geometry

// One of the H, W axes, cut into tiles of 4 outputs.
// - Dilation 1: tile t covers outputs 4t + j, j < 4, and reads inputs 4t - pad + i, i < 6.
// - Dilation 2 along W ("paired"): tile 2Q + r covers outputs 8Q + r + 2j and reads 8Q + r - pad + 2i,
//   so that each pair of lanes covers 8 consecutive outputs and 8 tiles load and store whole vectors;
//   as for dilation 1, the run of tiles from t (even) covers outputs from 4t and inputs from 4t - pad.
// - Otherwise: `dil` phase subgrids; tile t of phase p covers outputs p + dil*(4t + j) and reads
//   inputs p - pad + dil*(4t + i).
// So in all modes tile t of phase p covers outputs from p + step*4t and reads inputs from base[p] + step*4t.
struct Axis {
  int64_t dil = 1, phases = 1, step = 1;
  bool paired = false;
  // Phase subgrids with equal tile counts can share blocks: their tile rows interleave (row r of
  // the folded enumeration is tile row r / dil of phase r % dil), so that a block reads and writes
  // consecutive rows rather than every dil-th one.
  bool fold = false;
  std::vector<int64_t> base, outs, tiles;
  Axis(int64_t n_out, int64_t pad, int64_t dil_, bool allow_pairs) : dil(dil_) {
    if (dil == 1 || (dil == 2 && allow_pairs)) {
      paired = dil == 2;
      base.push_back(-pad);
      outs.push_back(n_out);
      tiles.push_back(paired ? 2 * ((n_out + 7) / 8) : (n_out + 3) / 4);
      return;
    }
    phases = step = dil;
    for (int64_t p = 0; p < dil; ++p) {
      const int64_t o = n_out > p ? (n_out - p + dil - 1) / dil : 0;
      base.push_back(p - pad);
      outs.push_back(o);
      tiles.push_back((o + 3) / 4);
    }
    fold = std::all_of(tiles.begin(), tiles.end(), [&](int64_t t) { return t == tiles[0]; });
  }
  // Items per image along this axis, with the phases of an item (one, or all when folded).
  int64_t item_phases() const { return fold ? 1 : phases; }
  int64_t item_tiles(int64_t p) const { return fold ? tiles[0] * phases : tiles[p]; }
};

// Development aid: -DMEDCONV_WINOGRAD_PROFILE accumulates per-thread CPU nanoseconds of the input
// transform, the GEMMs, the output transform ([0..2]) and the filter transform ([3]) in g_prof.
#ifdef MEDCONV_WINOGRAD_PROFILE
}  // namespace
}  // namespace medconv
#include <ctime>
namespace medconv {
namespace {
std::atomic<uint64_t> g_prof[4];
inline uint64_t prof_now() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1000000000ull + t.tv_nsec;
}
#define WINO_PROF_START(v) const uint64_t v = prof_now()
#define WINO_PROF_ADD(i, v) g_prof[i] += prof_now() - v
#else
#define WINO_PROF_START(v)
#define WINO_PROF_ADD(i, v)
#endif

struct Ctx {
  const ConvShape* s = nullptr;
  int64_t G = 1, Cg = 0, OCg = 0, KD = 1, K = 0;
  int64_t sd = 1, pd = 0, dd = 1;
  int64_t HW = 0, DHW = 0, OHW = 0, ODHW = 0;
  const float* x = nullptr;
  const PackedGemm* gemm = nullptr;
  const float* Ap = nullptr;  // [G][36][a_size]
  int64_t a_size = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  bool relu = false;
};

// A block of output tiles: group g, phase (ph, pw), output planes [d0, d0 + db), tiles
// [t0, t0 + nt) of the phase's (n, th, tw) enumeration (tiles may span images).
struct Item {
  int64_t g, ph, pw, d0, db, t0, nt;
  int64_t oc0, noc;  // output channels [oc0, oc0 + noc) of the group; oc0 a multiple of the GEMM's mr
};

// Consecutive lanes of a half panel whose tiles sit in one tile row of one image.
struct Run {
  int lane0 = 0, L = 0;
  int64_t n = 0, ph = 0, th = 0, tw0 = 0;  // image, H phase, tile row in the phase, first tile column
  __m256i perm;  // lane l takes lane l - lane0 of the run's vectors
  __m256 sel;    // lanes [lane0, lane0 + L)
};

// The runs of the 8 tiles t_first + l, l < count (count <= 8) of an item of H phase ph with tH x tW
// tiles per image (tH counting all phases' rows when the H axis is folded).
int make_runs(int64_t t_first, int count, const Axis& ah, int64_t ph, int64_t tH, int64_t tW, Run* runs) {
  int nr = 0;
  for (int l = 0; l < count;) {
    const int64_t t = t_first + l;
    Run& r = runs[nr++];
    r.lane0 = l;
    r.tw0 = t % tW;
    r.th = (t / tW) % tH;
    r.n = t / (tW * tH);
    r.ph = ph;
    if (ah.fold) {
      r.ph = r.th % ah.phases;
      r.th /= ah.phases;
    }
    r.L = static_cast<int>(std::min<int64_t>(count - l, tW - r.tw0));
    alignas(32) int32_t perm[8];
    alignas(32) uint32_t sel[8];
    for (int q = 0; q < 8; ++q) {
      perm[q] = (q - r.lane0) & 7;
      sel[q] = q >= r.lane0 && q < r.lane0 + r.L ? 0xFFFFFFFFu : 0u;
    }
    r.perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(perm));
    r.sel = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(sel)));
    l += r.L;
  }
  return nr;
}

// ---------------------------------------------------------------------------------------- filter transform

// Ap[g][xi] (the GEMM's packed A, [ceil(OCg/mr)][K][mr]) = U[xi][oc][k], k = kd*Cg + ic,
// U = G g G^T. One (group, mr-row panel) per call; lanes are the panel's rows, 8 at a time. The 36
// matrices are written in chunks of 16 consecutive k staged in L1 (36 scattered 24-byte stores per k
// cost twice as much), with streaming stores when `stream`.
void transform_filters(const Ctx& cx, const float* w, int64_t g, int64_t panel, float* Ap, bool stream) {
  const int64_t Cg = cx.Cg, OCg = cx.OCg, KD = cx.KD, K = cx.K, MR = cx.gemm->mr;
  const int64_t rows = std::min<int64_t>(MR, OCg - panel * MR);
  constexpr int kChunk = 16;
  constexpr int kStage = kChunk * kPackedMaxRows + 8;
  float* stage_buf = thread_scratch<float>(kXi * kStage, 0);
  auto stage = [&](int xi) { return stage_buf + xi * kStage; };
  for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
    const int n = static_cast<int>(std::min<int64_t>(kChunk, K - k0));
    for (int kk = 0; kk < n; ++kk) {
      const int64_t k = k0 + kk, kd = k / Cg, ic = k % Cg;
      for (int64_t r0 = 0; r0 < MR; r0 += 8) {
        // gv[t], lane r: tap t of row r0 + r of the panel (rows past OCg: 0)
        __m256 gv[9], u[18], U[kXi];
        load_filter_taps(w + (((g * OCg + panel * MR + r0) * Cg + ic) * KD + kd) * 9, Cg * KD * 9, rows - r0, gv);
        for (int j = 0; j < 3; ++j) g3(gv + j, 3, u + j, 3);        // u[a][j] = (G g)[a][j]
        for (int a = 0; a < 6; ++a) g3(u + a * 3, 1, U + a * 6, 1);  // U[a][b] = (G g G^T)[a][b]
        // 8 floats: with mr = 6, the 6 of row kk and 2 of row kk + 1, which the next kk overwrites.
        for (int xi = 0; xi < kXi; ++xi) _mm256_storeu_ps(stage(xi) + kk * MR + r0, U[xi]);
      }
    }
    float* dst = Ap + (g * kXi) * cx.a_size + (panel * K + k0) * MR;
    const int count = static_cast<int>(n * MR);
    for (int xi = 0; xi < kXi; ++xi) {  // (not memcpy: GCC makes that a rep movs, slow at these sizes)
      float* d = dst + xi * cx.a_size;
      int i = 0;
      if (stream) {
        for (; i < count && (reinterpret_cast<uintptr_t>(d + i) & 31); ++i) d[i] = stage(xi)[i];
        for (; i + 8 <= count; i += 8) _mm256_stream_ps(d + i, _mm256_loadu_ps(stage(xi) + i));
      }
      for (; i + 8 <= count; i += 8) _mm256_storeu_ps(d + i, _mm256_loadu_ps(stage(xi) + i));
      for (; i < count; ++i) d[i] = stage(xi)[i];
    }
  }
  if (stream) _mm_sfence();  // the streamed stores are visible before the GEMMs read them
}

// ---------------------------------------------------------------------------------------- input transform

// Per run of one half panel and one input plane: where its rows and columns come from.
struct InRun {
  const Run* run = nullptr;
  const float* base = nullptr;  // x at (n, g*Cg, 0, 0, 0); channel ic and plane p add ic * DHW + p * HW
  int64_t rowoff[6];            // offset of transformed row k, or -1 outside the image
  int64_t c0 = 0;               // input column of transformed column 0 of the run's first tile
  // step 1: column vectors i = 0..3 cover c0 + 8i + [0, 8), then c0 + 32 + [0, 4) (tail)
  __m256i mask[4];
  __m128i tail;
  bool full[4] = {false, false, false, false};
  int ilo = 0, ihi = 0;  // step > 1: columns i in [ilo, ihi) of c0 + step*i lie inside the row
};

void make_inrun(const Ctx& cx, const Axis& ah, const Axis& aw, int64_t g, int64_t pw, const Run& r, InRun& ir) {
  const ConvShape& s = *cx.s;
  ir.run = &r;
  ir.base = cx.x + (r.n * s.C + g * cx.Cg) * cx.DHW;
  for (int k = 0; k < 6; ++k) {
    const int64_t ih = ah.base[r.ph] + ah.step * (4 * r.th + k);
    ir.rowoff[k] = ih >= 0 && ih < s.H ? ih * s.W : -1;
  }
  ir.c0 = aw.base[pw] + aw.step * 4 * r.tw0;
  if (aw.step == 1) {  // contiguous or paired: 4 vectors from c0, then 2 (4 when paired) columns
    for (int i = 0; i < 4; ++i) {
      alignas(32) int32_t m[8];
      bool all = true;
      for (int q = 0; q < 8; ++q) {
        const int64_t col = ir.c0 + 8 * i + q;
        m[q] = col >= 0 && col < s.W ? -1 : 0;
        all = all && m[q];
      }
      ir.mask[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(m));
      ir.full[i] = all;
    }
    alignas(16) int32_t m[4];
    for (int q = 0; q < 4; ++q) m[q] = ir.c0 + 32 + q >= 0 && ir.c0 + 32 + q < s.W ? -1 : 0;
    ir.tail = _mm_load_si128(reinterpret_cast<const __m128i*>(m));
  } else {
    ir.ilo = 34;
    ir.ihi = 0;
    for (int i = 0; i < 34; ++i) {
      const int64_t col = ir.c0 + aw.step * i;
      if (col >= 0 && col < s.W) {
        ir.ilo = std::min(ir.ilo, i);
        ir.ihi = i + 1;
      }
    }
    if (ir.ihi <= ir.ilo) ir.ilo = ir.ihi = 0;
  }
}

// R[j], j = 0..5: lane m holds transformed column j of the run's tile m in this row.
// wmode 0: contiguous (tile m reads columns c0 + 4m + j); 1: paired (lane 2q + r reads c0 + 8q + r + 2j);
// 2: strided phase subgrid (tile m reads c0 + step*(4m + j)).
template <int wmode>
inline void load_cols(const float* row, const InRun& ir, int64_t step, __m256* R) {
  __m256 v0, v1, v2, v3;
  const float* p = row + ir.c0;
  if (wmode != 2) {
    v0 = ir.full[0] ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, ir.mask[0]);
    v1 = ir.full[1] ? _mm256_loadu_ps(p + 8) : _mm256_maskload_ps(p + 8, ir.mask[1]);
    v2 = ir.full[2] ? _mm256_loadu_ps(p + 16) : _mm256_maskload_ps(p + 16, ir.mask[2]);
    v3 = ir.full[3] ? _mm256_loadu_ps(p + 24) : _mm256_maskload_ps(p + 24, ir.mask[3]);
  }
  if (wmode == 1) {
    // 64-bit 4x4 transpose: R[i] = pair i of each 8-column block.
    const __m256d a0 = _mm256_castps_pd(v0), a1 = _mm256_castps_pd(v1), a2 = _mm256_castps_pd(v2),
                  a3 = _mm256_castps_pd(v3);
    const __m256d t0 = _mm256_unpacklo_pd(a0, a1), t1 = _mm256_unpackhi_pd(a0, a1);
    const __m256d t2 = _mm256_unpacklo_pd(a2, a3), t3 = _mm256_unpackhi_pd(a2, a3);
    const __m256d r0 = _mm256_permute2f128_pd(t0, t2, 0x20), r1 = _mm256_permute2f128_pd(t1, t3, 0x20);
    R[0] = _mm256_castpd_ps(r0);
    R[1] = _mm256_castpd_ps(r1);
    R[2] = _mm256_castpd_ps(_mm256_permute2f128_pd(t0, t2, 0x31));
    R[3] = _mm256_castpd_ps(_mm256_permute2f128_pd(t1, t3, 0x31));
    // Columns 8, 9 of the pair's block = columns 0, 1 of the next block: shift by one pair and
    // bring in columns 32..35.
    const __m256d e = _mm256_castps_pd(_mm256_castps128_ps256(_mm_maskload_ps(p + 32, ir.tail)));
    R[4] = _mm256_castpd_ps(_mm256_blend_pd(_mm256_permute4x64_pd(r0, 0x39), _mm256_permute4x64_pd(e, 0x00), 0x8));
    R[5] = _mm256_castpd_ps(_mm256_blend_pd(_mm256_permute4x64_pd(r1, 0x39), _mm256_permute4x64_pd(e, 0x55), 0x8));
    return;
  }
  __m256 e0, e1;
  if (wmode == 0) {
    const __m256 e = _mm256_castps128_ps256(_mm_maskload_ps(p + 32, ir.tail));
    e0 = _mm256_permutevar8x32_ps(e, _mm256_setzero_si256());
    e1 = _mm256_permutevar8x32_ps(e, _mm256_set1_epi32(1));
  } else {
    alignas(32) float tmp[40] = {};
    for (int i = ir.ilo; i < ir.ihi; ++i) tmp[i] = p[step * i];
    v0 = _mm256_load_ps(tmp);
    v1 = _mm256_load_ps(tmp + 8);
    v2 = _mm256_load_ps(tmp + 16);
    v3 = _mm256_load_ps(tmp + 24);
    e0 = _mm256_broadcast_ss(tmp + 32);
    e1 = _mm256_broadcast_ss(tmp + 33);
  }
  avx2::deinterleave4(v0, v1, v2, v3, R);
  const __m256i rot1 = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  R[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(R[0], rot1), e0, 0x80);
  R[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(R[1], rot1), e1, 0x80);
}

// V[xi][lane] = (B^T d B)[xi] for the 8 lanes of the runs (lanes outside every run: 0) at offset
// `off` (channel and plane) from the runs' bases; written at dst + xi * xi_stride.
template <int wmode>
void input_transform(int64_t step, const InRun* irs, int nruns, int64_t off, float* dst, int64_t xi_stride,
                     int64_t pf) {
  const __m256 zero = _mm256_setzero_ps();
  if (pf) {  // the next channel's rows
    for (int r = 0; r < nruns; ++r)
      for (int k = 0; k < 6; ++k) {
        if (irs[r].rowoff[k] < 0) continue;
        const char* q = reinterpret_cast<const char*>(irs[r].base + off + pf + irs[r].rowoff[k] + irs[r].c0);
        _mm_prefetch(q, _MM_HINT_T0);
        _mm_prefetch(q + 64, _MM_HINT_T0);
        _mm_prefetch(q + 132, _MM_HINT_T0);
      }
  }
  __m256 T[kXi];  // T[k][j]: row k transformed along W
  if (nruns == 1 && irs[0].run->L == 8) {
    const InRun& ir = irs[0];
    const float* b = ir.base + off;
    for (int k = 0; k < 6; ++k) {
      if (ir.rowoff[k] < 0) {
        for (int j = 0; j < 6; ++j) T[k * 6 + j] = zero;
        continue;
      }
      __m256 R[6];
      load_cols<wmode>(b + ir.rowoff[k], ir, step, R);
      bt6(R, 1, T + k * 6, 1);
    }
  } else {
    for (int k = 0; k < 6; ++k) {
      __m256 X[6] = {zero, zero, zero, zero, zero, zero};
      for (int r = 0; r < nruns; ++r) {
        const InRun& ir = irs[r];
        if (ir.rowoff[k] < 0) continue;
        __m256 R[6];
        load_cols<wmode>(ir.base + off + ir.rowoff[k], ir, step, R);
        for (int j = 0; j < 6; ++j)
          X[j] = _mm256_blendv_ps(X[j], _mm256_permutevar8x32_ps(R[j], ir.run->perm), ir.run->sel);
      }
      bt6(X, 1, T + k * 6, 1);
    }
  }
  for (int j = 0; j < 6; ++j) {  // along H, straight to V
    __m256 U[6];
    bt6(T + j, 6, U, 1);
    for (int a = 0; a < 6; ++a) _mm256_store_ps(dst + (a * 6 + j) * xi_stride, U[a]);
  }
}

// ---------------------------------------------------------------------------------------- one block

void run_item(const Ctx& cx, const Axis& ah, const Axis& aw, const Item& it, std::atomic<bool>& bad) {
  const ConvShape& s = *cx.s;
  const int64_t Cg = cx.Cg, OCg = cx.OCg, K = cx.K;
  const int64_t tH = ah.item_tiles(it.ph), tW = aw.tiles[it.pw];
  const int64_t OWs = aw.outs[it.pw];
  const int64_t dh = ah.step, dw = aw.step;  // output row / column step of the tiles
  const int wmode = aw.paired ? 1 : aw.step == 1 ? 0 : 2;
  const int64_t panels = (it.nt + kPanel - 1) / kPanel;
  const int64_t NP = (it.db - 1) * cx.sd + (cx.KD - 1) * cx.dd + 1;  // input planes of the block
  const int64_t pmin = it.d0 * cx.sd - cx.pd;
  const int64_t ldM = kPanel * panels;
  const int64_t plane_stride = Cg * kPanel;
  // The 36 transformed elements of a tile are read or written together: their strides get one cache
  // line on top, so that they do not all fall into the same cache sets.
  const int64_t xi_stride = panels * NP * plane_stride + 16;
  const int64_t moc_stride = kXi * ldM;  // M[od][oc][xi][cols]: the output transform reads it in order
  float* V = thread_scratch<float>(kXi * xi_stride, 1);            // [xi][panel][plane][ic][16]
  float* M = thread_scratch<float>(it.db * OCg * moc_stride, 2);   // [od][oc][xi][panel*16]

  WINO_PROF_START(prof_t0);
  // 1. Input transform. Channel by channel (and plane by plane), all tiles of the block, so that
  // the input is read in long runs of consecutive rows.
  constexpr int kMaxHalves = 2 * kMaxPanels;
  Run runs[kMaxHalves][8];
  InRun irs[kMaxHalves][8];
  int nruns[kMaxHalves];
  const int halves = static_cast<int>(2 * panels);
  for (int h = 0; h < halves; ++h) {
    const int64_t tfirst = h * 8;
    const int count = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(8, it.nt - tfirst)));
    nruns[h] = make_runs(it.t0 + tfirst, count, ah, it.ph, tH, tW, runs[h]);
    for (int r = 0; r < nruns[h]; ++r) make_inrun(cx, ah, aw, it.g, it.pw, runs[h][r], irs[h][r]);
  }
  // V offset of half h: panel h / 2, lanes (h % 2) * 8.
  auto vhalf = [&](int h, int64_t p) { return V + ((h / 2) * NP + p) * plane_stride + (h % 2) * 8; };
  for (int64_t ic = 0; ic < Cg; ++ic)
    for (int64_t p = 0; p < NP; ++p) {
      const int64_t plane = pmin + p;
      if (plane < 0 || plane >= s.D) {
        const __m256 zero = _mm256_setzero_ps();
        for (int h = 0; h < halves; ++h)
          for (int xi = 0; xi < kXi; ++xi) _mm256_store_ps(vhalf(h, p) + xi * xi_stride + ic * kPanel, zero);
        continue;
      }
      const int64_t off = ic * cx.DHW + plane * cx.HW;
      const int64_t pf = ic + 1 < Cg ? cx.DHW : 0;
      for (int h = 0; h < halves; ++h) {
        float* dst = vhalf(h, p) + ic * kPanel;
        if (wmode == 0) input_transform<0>(dw, irs[h], nruns[h], off, dst, xi_stride, pf);
        else if (wmode == 1) input_transform<1>(dw, irs[h], nruns[h], off, dst, xi_stride, pf);
        else input_transform<2>(dw, irs[h], nruns[h], off, dst, xi_stride, pf);
      }
    }

  WINO_PROF_ADD(0, prof_t0);
  WINO_PROF_START(prof_t1);
  // 2. The 36 GEMMs per output plane and panel: M[od][oc][xi][cols] = U[xi] (OCg x K) * V[xi] (K x 16),
  // rows [oc0, oc0 + noc) of it.
  // The B panel of output plane od is the K = KD*Cg rows of planes od*sd - pd + kd*dd: contiguous in V
  // when dd == 1 (or KD == 1), so gemm_columns reads it in place (its work buffer is the panel and the
  // packer does nothing); otherwise, or when K > KC, the packer copies the rows.
  const PackedGemm& gemm = *cx.gemm;
  const bool in_place = (cx.dd == 1 || cx.KD == 1) && K <= gemm.kc;
  int64_t cur_xi = 0, cur_panel = 0, cur_od = 0;
  const gemm_common::PackB noop = [](int64_t, int64_t, int64_t, int64_t, float*) {};
  const gemm_common::PackB copy = [&](int64_t pc, int64_t kc, int64_t, int64_t, float* Bp) {
    for (int64_t k = pc; k < pc + kc; ++k) {
      const int64_t kd = k / Cg, ic = k % Cg;
      const int64_t p = (cur_od * cx.sd - cx.pd + kd * cx.dd) - pmin;
      const float* src = V + cur_xi * xi_stride + (cur_panel * NP + p) * plane_stride + ic * kPanel;
      std::memcpy(Bp + (k - pc) * kPanel, src, kPanel * sizeof(float));
    }
  };
  float* work = in_place ? nullptr : thread_scratch<float>(gemm.kc * kPanel, 0);
  const gemm_common::Epilogue ep;
  for (int64_t xi = 0; xi < kXi; ++xi) {
    const float* Ax = cx.Ap + (it.g * kXi + xi) * cx.a_size;
    for (int64_t odl = 0; odl < it.db; ++odl)
      for (int64_t panel = 0; panel < panels; ++panel) {
        float* C = M + odl * OCg * moc_stride + xi * ldM + panel * kPanel;
        if (in_place) {
          const int64_t p = (it.d0 + odl) * cx.sd - cx.pd - pmin;
          float* B = V + xi * xi_stride + (panel * NP + p) * plane_stride;
          gemm.gemm_columns(it.noc, K, Ax + it.oc0 * K, noop, 0, kPanel, C + it.oc0 * moc_stride, moc_stride, ep, B);
        } else {
          cur_xi = xi;
          cur_panel = panel;
          cur_od = it.d0 + odl;
          gemm.gemm_columns(it.noc, K, Ax + it.oc0 * K, copy, 0, kPanel, C + it.oc0 * moc_stride, moc_stride, ep, work);
        }
      }
  }

  WINO_PROF_ADD(1, prof_t1);
  WINO_PROF_START(prof_t2);
  // 3. Output transform, bias, ReLU, stores; channel by channel, all tiles of the block, so that
  // the output is written in long runs of consecutive rows.
  const __m256 zero = _mm256_setzero_ps();
  __m256 chk = zero;  // OR of (o - o): nonzero bits iff some output is Inf or NaN
  bool fast[kMaxHalves];
  int nrows[kMaxHalves][8];
  int64_t ncols[kMaxHalves][8], yoff[kMaxHalves][8];  // yoff: (n, g*OCg, od = 0, first row, first column)
  for (int h = 0; h < halves; ++h) {
    fast[h] = nruns[h] == 1 && runs[h][0].L == 8 && dw == 1 && 4 * runs[h][0].tw0 + 32 <= OWs;
    for (int r = 0; r < nruns[h]; ++r) {
      const Run& run = runs[h][r];
      yoff[h][r] = (run.n * s.OC + it.g * OCg) * cx.ODHW + (run.ph + dh * 4 * run.th) * s.OW + it.pw + dw * 4 * run.tw0;
      nrows[h][r] = static_cast<int>(std::min<int64_t>(4, ah.outs[run.ph] - 4 * run.th));
      ncols[h][r] = std::min<int64_t>(4 * run.L, OWs - 4 * run.tw0);
    }
  }
  for (int64_t odl = 0; odl < it.db; ++odl)
    for (int64_t oc = it.oc0; oc < it.oc0 + it.noc; ++oc) {
      const __m256 b = _mm256_set1_ps(cx.bias ? cx.bias[it.g * OCg + oc] : 0.0f);
      float* yoc = cx.y + (oc * s.OD + it.d0 + odl) * cx.OHW;
      const float* mp = M + (odl * OCg + oc) * moc_stride;
      for (int h = 0; h < halves; ++h) {
        if (nruns[h] == 0) continue;
        __m256 m[kXi], S[24], O[16];
        for (int xi = 0; xi < kXi; ++xi) m[xi] = _mm256_load_ps(mp + xi * ldM + h * 8);
        // The bias: A^T's column 1 (the point 1) is all ones, so M[1][1] adds to all 16 outputs.
        m[7] = _mm256_add_ps(m[7], b);
        for (int a = 0; a < 6; ++a) at6(m + a * 6, 1, S + a * 4, 1);  // along W: S[a][j]
        for (int j = 0; j < 4; ++j) at6(S + j, 4, O + j, 4);          // along H: O[i][j]
        avx2::check_and_relu(O, chk, cx.relu);
        if (fast[h]) {
          float* yrow = yoc + yoff[h][0];
          for (int i = 0; i < nrows[h][0]; ++i) {
            __m256 q[4];
            if (wmode == 1) avx2::interleave4<true>(O + 4 * i, q);
            else avx2::interleave4<false>(O + 4 * i, q);
            float* d = yrow + dh * i * s.OW;
            _mm256_storeu_ps(d, q[0]);
            _mm256_storeu_ps(d + 8, q[1]);
            _mm256_storeu_ps(d + 16, q[2]);
            _mm256_storeu_ps(d + 24, q[3]);
          }
          continue;
        }
        alignas(32) float tmp[4][32];
        for (int i = 0; i < 4; ++i) {
          __m256 q[4];
          if (wmode == 1) avx2::interleave4<true>(O + 4 * i, q);
          else avx2::interleave4<false>(O + 4 * i, q);
          for (int v = 0; v < 4; ++v) _mm256_store_ps(tmp[i] + 8 * v, q[v]);
        }
        for (int r = 0; r < nruns[h]; ++r) {
          const Run& run = runs[h][r];
          for (int i = 0; i < nrows[h][r]; ++i) {
            float* yrow = yoc + yoff[h][r] + dh * i * s.OW;
            const float* src = tmp[i] + 4 * run.lane0;
            if (dw == 1) {
              std::memcpy(yrow, src, ncols[h][r] * sizeof(float));
            } else {
              for (int64_t q = 0; q < ncols[h][r]; ++q) yrow[dw * q] = src[q];
            }
          }
        }
      }
    }
  if (!_mm256_testz_si256(_mm256_castps_si256(chk), _mm256_castps_si256(chk)))
    bad.store(true, std::memory_order_relaxed);
  WINO_PROF_ADD(2, prof_t2);
}


}  // namespace

bool winograd_applicable(const ConvShape& s) {
  const char* algo = std::getenv("MEDCONV_CONV_ALGO");
  const bool force = algo && std::strcmp(algo, "winograd") == 0;
  if (s.KH != 3 || s.KW != 3 || s.stride[1] != 1 || s.stride[2] != 1) return false;
  if (s.N == 0 || s.OC == 0 || s.OD == 0 || s.OH == 0 || s.OW == 0) return false;
  if (force) return true;
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  // Few output channels waste most of the 6-row GEMM tiles, but with 64+ input channels the 2.25x
  // fewer products still beat the direct kernel from 2 output channels on (measured 1.8-2.5x on
  // 64 -> 2..4 and 256 -> 2 channels; with one output channel the direct kernel wins). Few input
  // channels go to the direct kernel: below 8 in 2D, below 4 in 3D (whose 3 planes of taps make
  // 4 -> 16 channels 1.8x faster here than there, and 3 -> 16 1.3x slower).
  const bool deep_enough = Cg >= 8 || (s.KD >= 3 && Cg >= 4);
  if (!deep_enough || (OCg < 8 && !(Cg >= 64 && OCg >= 2))) return false;
  // Tiles (over all phase subgrids) must be well filled: 36 products per tile against 9 per output
  // for a direct algorithm; and enough tiles in all to pay for the filter transform.
  const Axis ah(s.OH, s.pad[1], s.dilation[1], false), aw(s.OW, s.pad[2], s.dilation[2], true);
  int64_t tiles = 0;
  for (int64_t ph = 0; ph < ah.phases; ++ph)
    for (int64_t pw = 0; pw < aw.phases; ++pw) tiles += ah.tiles[ph] * aw.tiles[pw];
  if (tiles * 8 > s.OH * s.OW) return false;
  // The transformed filters (36 x OCg x KD*Cg floats per group, 4x the weights) are written and read
  // once per call and per block; that pays from 16 tiles in all, also where they outgrow the caches
  // (deep layers on small images): Winograd / GEMM at 16 tiles 1.4-2.6x (64-256 channels), 1.05-1.6x
  // (512 at 7x7 x 4 images, 1024 at 8x8 x 4), at 8 tiles 0.6-1.1x, on 1 and 2 threads.
  const int64_t all_tiles = s.N * s.OD * tiles;
  return all_tiles >= 16;
}

bool conv_winograd_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu,
                       const PackedGemm& gemm) {
  Ctx cx;
  cx.s = &s;
  cx.gemm = &gemm;
  cx.G = s.groups;
  cx.Cg = s.C / s.groups;
  cx.OCg = s.OC / s.groups;
  cx.KD = s.KD;
  cx.K = s.KD * cx.Cg;
  cx.sd = s.stride[0];
  cx.pd = s.pad[0];
  cx.dd = s.dilation[0];
  cx.HW = s.H * s.W;
  cx.DHW = s.D * cx.HW;
  cx.OHW = s.OH * s.OW;
  cx.ODHW = s.OD * cx.OHW;
  cx.x = x;
  cx.bias = bias;
  cx.y = y;
  cx.relu = relu;
  const Axis ah(s.OH, s.pad[1], s.dilation[1], false), aw(s.OW, s.pad[2], s.dilation[2], true);

  // Filter transform into the packed A matrices (+ 8 floats of slack for the 8-wide stores), or the
  // ones a call on the same weights left in filter_cache.h (weights of 256 KiB and more: 8x512x7x7 ->
  // 512 took 8.4 -> 6.0 ms at 1 thread, 4.8 -> 3.3 at 2; smaller ones transform in little time).
  cx.a_size = gemm.packed_a_size(cx.OCg, cx.K);
  const int64_t a_panels = (cx.OCg + gemm.mr - 1) / gemm.mr;
  const int64_t a_floats = cx.G * kXi * cx.a_size + 8;
  const int64_t w_count = s.OC * cx.K * 9;
  FilterLease lease;
  if (w_count * static_cast<int64_t>(sizeof(float)) >= (256 << 10))
    lease = lease_filters({reinterpret_cast<intptr_t>(w), reinterpret_cast<intptr_t>(&gemm), s.OC, s.groups, cx.Cg, cx.KD,
                           cx.a_size}, w, w_count, a_floats);
  float* Ap = lease.data ? lease.data : thread_scratch<float>(a_floats, 3);
  cx.Ap = Ap;
  // Filter sets larger than the caches are written with streaming stores: they would only evict
  // everything else on their way to memory, and half the traffic (no reads for ownership).
  const bool big_filters = cx.G * kXi * cx.a_size > (512 << 10);  // > 2 MB
  if (!lease.data || lease.fill) {
    WINO_PROF_START(prof_f0);
    parallel_for(cx.G * a_panels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) transform_filters(cx, w, i / a_panels, i % a_panels, Ap, big_filters);
    });
    WINO_PROF_ADD(3, prof_f0);
    lease.publish();
  }

  // Blocks of P panels of 16 tiles by Db output planes. Larger blocks read the transformed filters
  // (36 x OCg x K floats, megabytes for deep layers) fewer times, which pays when those outgrow the
  // caches; smaller ones keep V and M nearer the core and share out among the threads (2 panels
  // rather than 4: 1-14% faster on 3x3 layers of 32-128 channels, 8x128x32x32 the most). P shrinks
  // until the blocks share out evenly (a multiple of the thread count, or at least 4 per thread).
  // Where big filters meet under 2 panels of tiles per thread (deep layers on small images: 8x512x7x7
  // has 32 tiles), the blocks split their output channels among the threads instead, so that each
  // thread reads its share of the filters, not all of them, and transforms all the input tiles
  // (8x512x7x7 at 2 threads 5.5 -> 4.3-4.6 ms; at 64 tiles per thread, 8x256x16x16, it ran 7% slower).
  // The split changes no result.
  const bool is3d = s.KD > 1 || s.D > 1;
  const int64_t Db = std::min<int64_t>(s.OD, is3d ? 8 : 1);
  const int64_t threads = get_num_threads();
  std::vector<Item> items;
  auto make_items = [&](int64_t P, int64_t oc_parts) {
    items.clear();
    const int64_t TB = kPanel * P;
    const int64_t oc_step = ((cx.OCg + oc_parts - 1) / oc_parts + gemm.mr - 1) / gemm.mr * gemm.mr;
    for (int64_t g = 0; g < cx.G; ++g)
      for (int64_t ph = 0; ph < ah.item_phases(); ++ph)
        for (int64_t pw = 0; pw < aw.phases; ++pw) {
          const int64_t T = s.N * ah.item_tiles(ph) * aw.tiles[pw];
          for (int64_t d0 = 0; d0 < s.OD; d0 += Db)
            for (int64_t t0 = 0; t0 < T; t0 += TB)
              for (int64_t oc0 = 0; oc0 < cx.OCg; oc0 += oc_step)
                items.push_back(Item{g, ph, pw, d0, std::min(Db, s.OD - d0), t0, std::min(TB, T - t0), oc0,
                                     std::min(oc_step, cx.OCg - oc0)});
        }
    return static_cast<int64_t>(items.size());
  };
  const int64_t widest = is3d || !big_filters ? 2 : kMaxPanels;
  int64_t all_tiles = 0;
  make_items(widest, 1);
  for (const Item& it : items) all_tiles += it.nt;
  if (big_filters && !is3d && threads > 1 && all_tiles < 2 * kPanel * threads) {
    make_items(widest, threads);
  } else {
    for (int64_t P = widest;; P /= 2) {
      const int64_t n = make_items(P, 1);
      if (P == 1 || n >= 4 * threads || (n >= threads && n % threads == 0)) break;
    }
  }

  std::atomic<bool> bad(false);
  parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) run_item(cx, ah, aw, items[i], bad);
  });
  return !bad.load();
}

}  // namespace medconv
