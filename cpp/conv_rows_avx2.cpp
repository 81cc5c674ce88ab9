// The row-blocked direct convolution, AVX2+FMA, float32, for convs with stride 1 and no dilation
// along H and W and few input channels per group (single-channel filters, first layers, depthwise,
// 3D CT).
//
// One output channel's KH x KW taps stay in registers while RB output rows are computed together:
// each of the RB + KH - 1 input rows is loaded once per kw and feeds up to KH output rows, about
// one load per two FMAs where conv_direct_avx2.cpp's kernel needs one per FMA. Groups with several
// output channels read zero-padded copies of the input rows, shared by all the channels; with 6+
// channels and many taps, channel tiles (tile6x16_avx2.h) take all the taps of 6 channels x 16
// columns at once, with the same bits (rows_layout says which).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>

#include "aligned.h"
#include "conv_direct_avx2.h"
#include "gemm_avx2.h"
#include "memory.h"
#include "parallel.h"
#include "stream_avx2.h"
#include "tile6x16_avx2.h"

namespace medconv {
namespace {

// The 8 lanes from input column `first`: those inside [0, W).
inline __m256i column_mask(int64_t first, int64_t W) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lo = _mm256_set1_epi32(static_cast<int>(-first - 1));
  const __m256i hi = _mm256_set1_epi32(static_cast<int>(W - first));
  return _mm256_and_si256(_mm256_cmpgt_epi32(lane, lo), _mm256_cmpgt_epi32(hi, lane));
}

// One pass: the input rows of one (input channel, kd) plane for RB output rows, each pointing at
// input column -pw (rows outside the plane point at zeros), and one output channel's taps for it.
template <int KH, int KW, int RB>
struct Pass {
  const float* rows[RB + KH - 1];
  __m256 taps[KH * KW];
};

// How a block of 8 outputs reads its input columns: all inside [0, W) (inner); some outside, read
// as zero through masked loads (masked, which never fault); or, for the first and last blocks of a
// row with "same" padding (pw = (KW - 1) / 2, OW = W, W % 8 == 0), from the row's first or last 8
// columns shifted by whole lanes in registers (left, right: a 64-column depthwise conv in L2 ran
// 1.4x faster than with masked ends).
enum class Edge { inner, masked, left, right };

// Whether a row's first and last blocks can shift its end vectors (left, right): "same" padding along W,
// OW = W, W a multiple of 8 and at least 16 (so that they are two blocks).
inline bool shifted_edges_apply(const ConvShape& s) {
  return s.pad[2] == (s.KW - 1) / 2 && s.OW == s.W && s.W % 8 == 0 && s.W >= 16;
}

// Where a row's blocks start: at column 0 (kPhase 0), or 4 columns earlier (kPhase 4) for output
// rows that start 16 bytes past a 32-byte boundary (numpy's large arrays): then the blocks' 8
// columns are aligned in y and streamed from the registers, the first and last blocks' outer halves
// (columns -4..-1 and OW..OW+3) dropped, where otherwise the rows are staged and copied (S7 into a
// numpy out=: 1.3x slower).

// With kPhase 4, a row's last 4 outputs and the next row's first 4 share one aligned 32 bytes of y:
// streamed together, in order of rows, and next to the other half of their 64-byte line, so that no
// line is left partly written for long (16-byte halves streamed apart, or a seam streamed a row's
// sweep after the rest of its line, ran 1.2-1.4x slower than staging the rows).
class HalfSeams {
 public:
  void head(float* row, __m128 v) {
    if (tail_at_ + 4 == row) {
      _mm256_stream_ps(tail_at_, _mm256_set_m128(v, tail_));
      tail_at_ = nullptr;
      return;
    }
    flush();
    _mm_stream_ps(row, v);
  }
  void tail(float* at, __m128 v) {
    flush();
    tail_at_ = at, tail_ = v;
  }
  void flush() {
    if (tail_at_) _mm_stream_ps(tail_at_, tail_);
    tail_at_ = nullptr;
  }

 private:
  float* tail_at_ = nullptr;
  __m128 tail_ = _mm_setzero_ps();
};

// v shifted by `by` lanes towards the high lanes (by > 0) or the low ones (by < 0), zeros shifted
// in; `by` is a constant once the tap loops are unrolled.
inline __m256 shift_lanes(__m256 v, int by) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i from = _mm256_sub_epi32(lane, _mm256_set1_epi32(by));
  const __m256i inside = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), from),
                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(8), from));
  return _mm256_and_ps(_mm256_permutevar8x32_ps(v, from), _mm256_castsi256_ps(inside));
}

// acc[r] += the pass's taps over the 8 outputs from ow of output row r. Per output the taps come in
// (kh, kw) order, one FMA each (taps in the padding multiply zeros, as torch's), so the bits do not
// depend on the blocking or the thread count.
template <int KH, int KW, int RB, Edge kEdge, int kPhase>
inline __attribute__((always_inline)) void accumulate(const Pass<KH, KW, RB>& p, int64_t ow, int64_t pw,
                                                      int64_t W, __m256 (&acc)[RB]) {
  constexpr int kSamePad = (KW - 1) / 2;
#pragma GCC unroll 16
  for (int i = 0; i < RB + KH - 1; ++i)
#pragma GCC unroll 8
    for (int kw = 0; kw < KW; ++kw) {
      __m256 v;
      if constexpr (kEdge == Edge::masked) {
        v = _mm256_maskload_ps(p.rows[i] + ow + kw, column_mask(ow - pw + kw, W));
      } else if (kEdge == Edge::left && kw < kSamePad + kPhase) {  // columns ow + kw - pw .. from 0 .. 7
        v = shift_lanes(_mm256_loadu_ps(p.rows[i] + kSamePad), kSamePad + kPhase - kw);
      } else if (kEdge == Edge::right && kw > kSamePad - kPhase) {  // columns ow + kw - pw .. from W - 8 .. W - 1
        v = shift_lanes(_mm256_loadu_ps(p.rows[i] + kSamePad + ow - kPhase), kSamePad - kPhase - kw);
      } else {
        v = _mm256_loadu_ps(p.rows[i] + ow + kw);
      }
#pragma GCC unroll 8
      for (int r = 0; r < RB; ++r) {
        const int kh = i - r;
        if (kh >= 0 && kh < KH) acc[r] = _mm256_fmadd_ps(p.taps[kh * KW + kw], v, acc[r]);
      }
    }
}

// RB output rows of one output channel (rows past OH point at scratch), every pass (ic, kd) summed in
// order: the first pass starts from the bias, later ones from y, the last one applies the ReLU.
template <int KH, int KW, int RB>
struct Job {
  const ConvShape* s;
  const float* x;      // x[n, g * Cg]: one image, one group
  const float* w;      // w[oc]: [Cg, KD, KH, KW]
  float bias;
  float* out[RB];      // the output rows, OW floats each (+ 8 for rows in scratch)
  int64_t od, oh0;
  bool relu;
  bool stream;         // the last pass writes whole 8-float blocks with streaming stores (rows 32-byte aligned)
  HalfSeams* seams;    // non-null: one pass, shifted edges, rows 16 bytes past a 32-byte boundary (blocks from column -4)
  const float* zeros;  // at least W zeros
  // Null, or the block's input rows copied between zeros, RB + KH - 1 rows of `padded_len` floats per
  // pass (ic, kd) in order, entry 0 of each at input column -pw: then no load needs a mask.
  const float* padded;
  int64_t padded_len;
};

// The input plane of tap kd for output plane od, and whether x has it (strided or dilated depths
// leave holes, padding leaves planes outside x).
inline int64_t input_plane(const ConvShape& s, int64_t od, int64_t kd) {
  return od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
}
inline bool plane_exists(const ConvShape& s, int64_t od, int64_t kd) {
  const int64_t id = input_plane(s, od, kd);
  return id >= 0 && id < s.D;
}

template <int KH, int KW, int RB>
void rows_block(const Job<KH, KW, RB>& job) {
  const ConvShape& s = *job.s;
  const int64_t Cg = s.C / s.groups, OW = s.OW, W = s.W, pw = s.pad[2];
  int64_t kd_lo = s.KD, kd_hi = 0;  // the kd whose input plane exists
  for (int64_t kd = 0; kd < s.KD; ++kd)
    if (plane_exists(s, job.od, kd)) kd_lo = std::min(kd_lo, kd), kd_hi = kd + 1;
  const __m256 zero = _mm256_setzero_ps();
  if (kd_lo >= kd_hi) {
    const float v = job.relu ? std::max(job.bias, 0.0f) : job.bias;  // NaN stays NaN
    for (int r = 0; r < RB; ++r) std::fill(job.out[r], job.out[r] + OW, v);
    return;
  }
  const __m256 bias = _mm256_set1_ps(job.bias);
  const float* padded = job.padded;
  const bool shifted_edges = shifted_edges_apply(s);
  const bool half_phase = job.seams && shifted_edges;
  __m128 heads[RB], tails[RB];  // with half_phase, the rows' first and last 4 outputs
  __m256 kept[RB];              // and their outputs 4..11, where those share a line with the seam
  for (int64_t ic = 0; ic < Cg; ++ic)
    for (int64_t kd = kd_lo; kd < kd_hi; ++kd) {
      if (!plane_exists(s, job.od, kd)) continue;  // a hole of a strided or dilated depth
      const int64_t id = input_plane(s, job.od, kd);
      const bool first = ic == 0 && kd == kd_lo, last = ic == Cg - 1 && kd == kd_hi - 1;
      const float* plane = job.x + (ic * s.D + id) * s.H * W;
      Pass<KH, KW, RB> p;
      for (int i = 0; i < RB + KH - 1; ++i) {
        const int64_t ih = job.oh0 - s.pad[1] + i;
        p.rows[i] = padded ? padded + i * job.padded_len : (ih >= 0 && ih < s.H ? plane + ih * W : job.zeros) - pw;
      }
      if (padded) padded += (RB + KH - 1) * job.padded_len;
      const float* taps = job.w + (ic * s.KD + kd) * KH * KW;
      for (int t = 0; t < KH * KW; ++t) p.taps[t] = _mm256_broadcast_ss(taps + t);
      // 8 outputs from ow of each row, their columns read as `edge` says; kTail: outputs masked to
      // those below OW.
      auto block = [&](int64_t ow, auto edge, auto tail, auto phase, bool keep = false) {
        constexpr Edge kEdge = decltype(edge)::value;
        constexpr bool kTail = kEdge == Edge::masked || decltype(tail)::value;
        constexpr int kPhase = decltype(phase)::value;
        const __m256i store_mask = column_mask(ow, OW);
        __m256 acc[RB];
        for (int r = 0; r < RB; ++r) {
          if (kPhase != 0 || first) acc[r] = bias;
          else if constexpr (kTail) acc[r] = _mm256_maskload_ps(job.out[r] + ow, store_mask);
          else acc[r] = _mm256_loadu_ps(job.out[r] + ow);
        }
        accumulate<KH, KW, RB, kEdge, kPhase>(p, ow, pw, W, acc);
        for (int r = 0; r < RB; ++r) {
          if (last && job.relu) acc[r] = _mm256_max_ps(zero, acc[r]);  // NaN stays NaN
          if constexpr (kPhase != 0) {  // one pass: first and last; the edge blocks' inner halves
            if constexpr (kEdge == Edge::left) heads[r] = _mm256_extractf128_ps(acc[r], 1);
            else if constexpr (kEdge == Edge::right) tails[r] = _mm256_castps256_ps128(acc[r]);
            else if (keep) kept[r] = acc[r];
            else _mm256_stream_ps(job.out[r] + ow, acc[r]);
            continue;
          }
          if (last && job.stream && ow + 8 <= OW) _mm256_stream_ps(job.out[r] + ow, acc[r]);
          else if constexpr (kTail) _mm256_maskstore_ps(job.out[r] + ow, store_mask, acc[r]);
          else _mm256_storeu_ps(job.out[r] + ow, acc[r]);
        }
      };
      using No = std::false_type;
      using Yes = std::true_type;
      using Inner = std::integral_constant<Edge, Edge::inner>;
      using Masked = std::integral_constant<Edge, Edge::masked>;
      using Left = std::integral_constant<Edge, Edge::left>;
      using Right = std::integral_constant<Edge, Edge::right>;
      using Phase0 = std::integral_constant<int, 0>;
      using Phase4 = std::integral_constant<int, 4>;
      if (padded) {  // every load inside the padded rows
        int64_t ow = 0;
        for (; ow + 8 <= OW; ow += 8) block(ow, Inner{}, No{}, Phase0{});
        if (ow < OW) block(ow, Inner{}, Yes{}, Phase0{});
        continue;
      }
      if (half_phase) {
        // a seam at the start of its line is followed there by the outputs 4..11 of the row
        const bool keep = (reinterpret_cast<uintptr_t>(job.out[0]) & 63) == 16;
        block(-4, Left{}, No{}, Phase4{});
        block(4, Inner{}, No{}, Phase4{}, keep);
        for (int64_t ow = 12; ow < OW - 4; ow += 8) block(ow, Inner{}, No{}, Phase4{});
        block(OW - 4, Right{}, No{}, Phase4{});
        for (int r = 0; r < RB; ++r) {
          job.seams->head(job.out[r], heads[r]);
          if (keep) _mm256_stream_ps(job.out[r] + 4, kept[r]);
          job.seams->tail(job.out[r] + OW - 4, tails[r]);
        }
        continue;
      }
      if (shifted_edges) {
        block(0, Left{}, No{}, Phase0{});
        for (int64_t ow = 8; ow < OW - 8; ow += 8) block(ow, Inner{}, No{}, Phase0{});
        block(OW - 8, Right{}, No{}, Phase0{});
        continue;
      }
      // Blocks whose columns ow - pw .. ow + 7 - pw + KW - 1 all lie inside [0, W) and inside OW.
      const int64_t inner_end = std::min(OW, W + pw - KW + 1) - 8;
      int64_t ow = 0;
      for (; ow < pw && ow < OW; ow += 8) block(ow, Masked{}, Yes{}, Phase0{});
      for (; ow <= inner_end; ow += 8) block(ow, Inner{}, No{}, Phase0{});
      for (; ow < OW; ow += 8) block(ow, Masked{}, Yes{}, Phase0{});
    }
}

constexpr int64_t kMaxPaddedFloats = 65536;  // 256 KiB, in L2: beyond it, edge blocks mask their loads

// dst[pass][i][c + pw] = x[ic, id, oh0 - ph + i, c] for each pass (ic, kd) whose plane id exists, in
// order, i < nrows, c < W; zero elsewhere (rows outside the plane, and the columns around the row).
// xg: [Cg, D, H, W]; dst rows of len floats
inline void fill_padded_rows(const ConvShape& s, const float* xg, int64_t od, int64_t oh0, int64_t nrows, int64_t len,
                             float* dst) {
  const int64_t Cg = s.C / s.groups, pw = s.pad[2];
  for (int64_t ic = 0; ic < Cg; ++ic)
    for (int64_t kd = 0; kd < s.KD; ++kd) {
      if (!plane_exists(s, od, kd)) continue;
      const int64_t id = input_plane(s, od, kd);
      for (int64_t i = 0; i < nrows; ++i, dst += len) {
        const int64_t ih = oh0 - s.pad[1] + i;
        const bool inside = ih >= 0 && ih < s.H;
        // zeros around the row first (whole aligned vectors), then the row over them: no library
        // calls for these short rows (3 per row cost 7% of S8)
        const __m256 zero = _mm256_setzero_ps();
        for (int64_t j = 0; j < (inside ? pw : len); j += 8) _mm256_store_ps(dst + j, zero);
        if (!inside) continue;
        for (int64_t j = (pw + s.W) / 8 * 8; j < len; j += 8) _mm256_store_ps(dst + j, zero);
        const float* src = xg + ((ic * s.D + id) * s.H + ih) * s.W;
        int64_t c = 0;
        for (; c + 8 <= s.W; c += 8) _mm256_storeu_ps(dst + pw + c, _mm256_loadu_ps(src + c));
        if (c < s.W) {
          const __m256i m = column_mask(c, s.W);
          _mm256_maskstore_ps(dst + pw + c, m, _mm256_maskload_ps(src + c, m));
        }
      }
    }
}


// Output rows per block: 4 accumulators, 9 taps and an input vector fit the 16 registers (larger
// kernels read their taps from L1). Four rows are also as many as the write-combining buffers take
// when the rows are streamed straight from the registers.
constexpr int kRowBlock = 4;

struct RowsLayout {
  int64_t padded_len, padded_floats;  // floats per padded input row, and per row block (all passes)
  bool large;                         // an output of kStreamStoreBytes or more (memory.h)
  bool pad_rows, tiles;
};

// Padded input rows where a group has several output channels: every block then loads without
// masks (the two edge blocks of a row, masked, cost as much as 6 inner ones); built once per row
// block for all the output channels. Channel tiles where it has at least 6: all the taps of an
// output at once, up to 6 channels per loaded input vector. They win where the taps are many (S8:
// 1.1-1.4x). With 9 taps one channel at a time streams its rows, 1.3-1.4x faster than the tiles'
// plain stores; small outputs run as fast or faster one channel at a time.
inline RowsLayout rows_layout(const ConvShape& s) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  const int64_t row_len = (s.OW + 15) / 16 * 16 + s.KW - 1;
  RowsLayout lay;
  lay.padded_len = (std::max(s.pad[2] + s.W, row_len) + 7) / 8 * 8;
  lay.padded_floats = Cg * s.KD * (kRowBlock + s.KH - 1) * lay.padded_len;
  lay.pad_rows = OCg > 1 && lay.padded_floats <= kMaxPaddedFloats;
  lay.large = s.N * s.OC * s.OD * s.OH * s.OW * 4 >= kStreamStoreBytes;
  const bool tileable = lay.pad_rows && OCg >= avx2::kTileOC;
  lay.tiles = tileable && Cg * s.KD * s.KH * s.KW >= 27;
  return lay;
}

// Large outputs bypass the caches (memory.h). A block of one pass streams its rows straight from
// the registers; a block of several passes (input channels, kd), or of rows not 32-byte aligned,
// accumulates in a per-thread L1 copy of its rows (contiguous, as in y) and streams them out after
// the last pass.
template <int KH, int KW>
void run_rows(const ConvShape& s, const float* x, const float* w, const float* bias, float* y, bool relu) {
  constexpr int RB = kRowBlock;
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t row_blocks = (s.OH + RB - 1) / RB;
  // A task: (image, group, output plane) and a run of row blocks; enough tasks to balance threads.
  const int64_t units = s.N * G * s.OD;
  const int64_t per_task = units >= 64 ? row_blocks : std::max<int64_t>(1, row_blocks * units / 64);
  const int64_t chunks = (row_blocks + per_task - 1) / per_task;
  const int64_t plane_out = s.OD * s.OH * s.OW;
  const RowsLayout lay = rows_layout(s);
  const bool stream = lay.large;
  const int64_t padded_len = lay.padded_len, padded_floats = lay.padded_floats;
  const bool pad_rows = lay.pad_rows;
  // Rows that are not all 32-byte aligned are staged like a block of several passes (into a numpy
  // out=, 16 bytes past a page: S7 1.5-1.7x, S2 1.3x faster than plain stores or channel tiles).
  const bool rows_aligned = ((reinterpret_cast<uintptr_t>(y) | (s.OW * 4)) & 31) == 0;
  // ... unless they are all 16 bytes off and one pass with shifted edges makes them: blocks from column -4
  const bool rows_half_aligned = (reinterpret_cast<uintptr_t>(y) & 31) == 16 && (s.OW * 4) % 32 == 0 &&
                                 shifted_edges_apply(s) && !pad_rows && Cg == 1;
  const bool tiles = lay.tiles;
  // The channels in tiles of equal size (8 = 4 + 4, not 6 + 2): tile t holds [tile_oc(t), tile_oc(t + 1)).
  const int64_t K = Cg * s.KD * KH * KW, oc_tiles = (OCg + avx2::kTileOC - 1) / avx2::kTileOC;
  auto tile_oc = [&](int64_t t) { return t * OCg / oc_tiles; };
  static_assert(gemm::MR == avx2::kTileOC, "a tile's weights are one SGEMM A panel");
  std::unique_ptr<float, FreeDeleter> wt;  // [G][oc_tiles][K][6], zero past the tile's channels
  if (tiles) {
    wt = aligned_floats(G * oc_tiles * K * avx2::kTileOC);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t t = 0; t < oc_tiles; ++t)
        gemm::pack_a(w + (g * OCg + tile_oc(t)) * K, K, 1, tile_oc(t + 1) - tile_oc(t), K,
                     wt.get() + (g * oc_tiles + t) * K * avx2::kTileOC);
  }
  parallel_for(units * chunks, 1, [&](int64_t begin, int64_t end) {
    const float* zeros = thread_zeros(s.W + 16);
    HalfSeams seams;
    float* spare = thread_scratch<float>(RB * (s.OW + 8), 5);  // rows past OH, or a staged block
    float* padded = pad_rows ? thread_scratch<float>(padded_floats, 4) : nullptr;
    const float** brow = tiles ? thread_scratch<const float*>(RB * K, 3) : nullptr;  // each row's taps: input rows
    int64_t* aoff = tiles ? thread_scratch<int64_t>(RB * K, 2) : nullptr;              // and weight offsets
    for (int64_t t = begin; t < end; ++t) {
      const int64_t chunk = t % chunks, od = (t / chunks) % s.OD;
      const int64_t g = (t / (chunks * s.OD)) % G, n = t / (chunks * s.OD * G);
      const float* xg = x + (n * s.C + g * Cg) * s.D * s.H * s.W;
      int64_t passes = 0;
      for (int64_t kd = 0; kd < s.KD; ++kd) passes += plane_exists(s, od, kd) ? Cg : 0;
      const bool half_phase = stream && passes == 1 && rows_half_aligned;
      const bool staged = stream && (passes > 1 || !rows_aligned) && !half_phase;
      const int64_t rb_end = std::min(row_blocks, (chunk + 1) * per_task);
      // The taps of each row of a block in order, for the channel tiles: passes (ic, kd) whose plane
      // exists, then (kh, kw); the same for every block of this output plane.
      int64_t nk = 0;
      for (int64_t r = 0; tiles && r < RB; ++r) {
        nk = 0;
        for (int64_t ic = 0, pass = 0; ic < Cg; ++ic)
          for (int64_t kd = 0; kd < s.KD; ++kd) {
            if (!plane_exists(s, od, kd)) continue;
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw, ++nk) {
                brow[r * K + nk] = padded + (pass * (RB + KH - 1) + r + kh) * padded_len + kw;
                aoff[r * K + nk] = (((ic * s.KD + kd) * KH + kh) * KW + kw) * avx2::kTileOC;
              }
            ++pass;
          }
      }
      // Row block outer, channel inner: the block's input rows stay in L1 for all the channels.
      for (int64_t rb = chunk * per_task; rb < rb_end; ++rb) {
        const int64_t oh0 = rb * RB, rows = std::min<int64_t>(RB, s.OH - oh0);
        if (pad_rows) fill_padded_rows(s, xg, od, oh0, RB + KH - 1, padded_len, padded);
        if (tiles) {
          // Plain stores: streaming ones, 64-byte pieces of 6 channel planes in turn, were 1.1-1.6x
          // slower here, and so was staging a tile's rows to stream them a channel at a time.
          for (int64_t t = 0; t < oc_tiles; ++t) {
            const int64_t oc0 = g * OCg + tile_oc(t);
            const int mr = static_cast<int>(tile_oc(t + 1) - tile_oc(t));
            alignas(32) float bias6[avx2::kTileOC] = {};
            for (int i = 0; i < mr; ++i) bias6[i] = bias ? bias[oc0 + i] : 0.0f;
            const float* ap = wt.get() + (g * oc_tiles + t) * K * avx2::kTileOC;
            for (int64_t r = 0; r < rows; ++r) {
              float* c = y + (n * s.OC + oc0) * plane_out + (od * s.OH + oh0 + r) * s.OW;
              for (int64_t ow = 0; ow < s.OW; ow += 16) {
                const int nr = static_cast<int>(std::min<int64_t>(16, s.OW - ow));
                const float* const* br = brow + r * K;
                const int64_t* ao = aoff + r * K;
                if (mr > 4) avx2::channel_tile<6>(nk, br, ao, ap, ow, bias6, c + ow, plane_out, mr, nr, relu);
                else if (mr > 2) avx2::channel_tile<4>(nk, br, ao, ap, ow, bias6, c + ow, plane_out, mr, nr, relu);
                else avx2::channel_tile<2>(nk, br, ao, ap, ow, bias6, c + ow, plane_out, mr, nr, relu);
              }
            }
          }
          continue;
        }
        for (int64_t o = 0; o < OCg; ++o) {
          const int64_t oc = g * OCg + o;
          float* out = y + (n * s.OC + oc) * plane_out + (od * s.OH + oh0) * s.OW;
          Job<KH, KW, RB> job{&s, xg, w + oc * Cg * s.KD * KH * KW, bias ? bias[oc] : 0.0f, {}, od, oh0, relu,
                              stream && !staged, half_phase ? &seams : nullptr, zeros, padded, padded_len};
          for (int r = 0; r < RB; ++r) {  // rows past OH go to spare, with the alignment of y's rows
            job.out[r] = r < rows && !staged ? out + r * s.OW : spare + r * s.OW + (half_phase ? 4 : 0);
            job.stream &= (reinterpret_cast<uintptr_t>(job.out[r]) & 31) == (half_phase ? 16 : 0);
          }
          rows_block<KH, KW, RB>(job);
          if (staged) avx2::stream_copy(out, spare, rows * s.OW * 4);  // the block's rows are contiguous
        }
      }
    }
    seams.flush();
    if (stream) _mm_sfence();  // the streamed stores are visible before the call returns
  });
}

}  // namespace

bool conv_rows_applies(const ConvShape& s) {
  // Column masks are 32-bit lane compares; the 8-float blocks of a row may end past OW.
  return s.stride[1] == 1 && s.stride[2] == 1 && s.dilation[1] == 1 && s.dilation[2] == 1 && s.KH == s.KW &&
         (s.KH == 3 || s.KH == 5 || s.KH == 7) && s.W < (int64_t{1} << 30) && s.OW < (int64_t{1} << 30);
}

bool conv_rows_channel_tiles(const ConvShape& s) { return conv_rows_applies(s) && rows_layout(s).tiles; }

bool conv_rows_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                        bool relu) {
  if (!conv_rows_applies(s)) return false;
  const int64_t kh = s.KH, kw = s.KW;
  if (kh == 3 && kw == 3) run_rows<3, 3>(s, x, w, bias, y, relu);
  else if (kh == 5 && kw == 5) run_rows<5, 5>(s, x, w, bias, y, relu);
  else if (kh == 7 && kw == 7) run_rows<7, 7>(s, x, w, bias, y, relu);
  else return false;
  return true;
}

}  // namespace medconv
