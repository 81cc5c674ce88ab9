// The input gradient of a strided convolution, and so the transposed convolution of U-Net decoders,
// as stride-1 convolutions of gy with s_d * s_h * s_w outputs per channel of gx (sub-pixel
// convolution), over any ISA's packed SGEMM. Along an axis with stride s and padding p (dilation 1),
// gx[c + s*m] sums w[k] gy[m + e] over the taps k of phase c, e = (c + p - k) / s: consecutive
// offsets, E_c of them from -lead_c. A task takes a block of gx's channels by a run of m's rows:
// it computes Z[(ch, phase), m] = bias[ch] + sum over the phase's taps and gy's channels, into a
// buffer that stays in L2, then spreads Z into gx's rows, each written once (the phase convs of
// conv_phases.cpp write a buffer as large as gx and interleave it in a second pass).
// - Where every phase has the same window (s * E == K along each axis: kernel == stride, the
//   2x2 / 2x2x2 stride-2 up-convs of U-Nets, or kernel 2s without padding) Z is one GEMM,
//   A[(ch, phase), (oc, j)] = w[oc, ch, the phase's tap at j] against the im2col columns of gy for
//   a kernel E, padding lead: A has no zeros, and its rows are s_d s_h s_w times gx's channels.
// - Otherwise (3x3 stride 2: phases of 1, 2 and 4 taps) each phase is a GEMM of its own taps into
//   its rows of Z; a phase no tap reaches gets the bias alone.
// Internal linkage throughout (see gemm_common.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "aligned.h"
#include "conv_gemm.h"
#include "gemm_common.h"
#include "kernels.h"
#include "memory.h"
#include "parallel.h"

namespace medconv {
namespace conv_subpixel {
namespace {

// One phase c of an axis: the window offsets of its taps are -lead .. E - 1 - lead (E = 0: no tap).
struct Phase {
  int64_t E = 0, lead = 0;
};

// One axis: kernel K, stride s, padding p, its phases, and the grid of m's, ceil(n / s) for gx's
// n (its last group of s may be partial).
struct Axis {
  int64_t K = 1, s = 1, p = 0, grid = 1;
  std::vector<Phase> phase;  // [s]
  bool dilated = false;      // dilation above 1 with more than one tap
  bool uniform() const {     // every phase has the whole kernel's window: s * E == K
    for (const Phase& ph : phase)
      if (ph.E * s != K || ph.lead != phase[0].lead) return false;
    return true;
  }
  int64_t max_taps() const {
    int64_t m = 0;
    for (const Phase& ph : phase) m = std::max(m, ph.E);
    return m;
  }
  // the tap of phase c at window index j, -1 where none
  int64_t tap(int64_t c, int64_t j) const {
    const int64_t k = c + p - (j - phase[c].lead) * s;
    return j < phase[c].E && k >= 0 && k < K ? k : -1;
  }
};

inline Axis axis_of(int64_t K, int64_t s, int64_t p, int64_t dil, int64_t n) {
  Axis a;
  a.K = K, a.s = s, a.p = p, a.grid = (n + s - 1) / s;
  a.dilated = K > 1 && dil != 1;
  a.phase.resize(static_cast<size_t>(s));
  for (int64_t c = 0; c < s; ++c) {
    int64_t lo = 0, hi = -1;
    for (int64_t k = 0; k < K; ++k)
      if (((c + p - k) % s + s) % s == 0) {
        const int64_t e = (c + p - k) / s;
        if (hi < lo) lo = hi = e;
        lo = std::min(lo, e), hi = std::max(hi, e);
      }
    a.phase[c].E = hi - lo + 1;  // 0 where no tap
    a.phase[c].lead = -lo;
  }
  return a;
}

enum class Mode { none, merged, split };

// How s's input gradient runs here, if it does: dilation 1 and a stride above 1; one GEMM where
// every phase has the kernel's window (merged), a GEMM per phase where the phases have at most 2
// taps per axis and gx has 8 to kMaxBlockRows / phases channels per group, gy at least 8 (split:
// 3x3 stride 2, 1.1-1.5x faster than the phase convs; with more channels a block's GEMMs would have
// fewer rows than the phase convs' one: 8x256x16x16 -> 128 ran 0.85-0.96x). Phases with larger
// kernels keep conv_phases.cpp's phase convs, which can take Winograd or the direct kernel.
constexpr int64_t kMaxBlockRows = 256;  // rows of Z per task

inline Mode mode_of(const ConvShape& s) {
  const int64_t K[3] = {s.KD, s.KH, s.KW}, n[3] = {s.D, s.H, s.W};
  bool strided = false, uniform = true, small = true;
  for (int i = 0; i < 3; ++i) {
    const Axis a = axis_of(K[i], s.stride[i], s.pad[i], s.dilation[i], n[i]);
    if (a.dilated) return Mode::none;
    strided = strided || a.s > 1;
    uniform = uniform && a.uniform();
    small = small && a.max_taps() <= 2;
  }
  if (!strided) return Mode::none;
  if (uniform) return Mode::merged;
  const int64_t Cg = s.C / s.groups, phases = s.stride[0] * s.stride[1] * s.stride[2];
  return small && Cg >= 8 && Cg * phases <= kMaxBlockRows && s.OC / s.groups >= 8 ? Mode::split : Mode::none;
}

inline bool applicable(const ConvShape& s) { return mode_of(s) != Mode::none; }

// dst[m * SW + c] = z[c * ldz + m] for m < n, c < SW (a compile-time SW lets the compiler
// interleave whole vectors).
template <int SW>
inline void spread_row(const float* z, int64_t ldz, int64_t n, float* dst) {
  for (int64_t m = 0; m < n; ++m)
    for (int c = 0; c < SW; ++c) dst[m * SW + c] = z[c * ldz + m];
}

// How a task writes one row of gx: dst[m * sw + c] = z[c * ldz + m] for m < n, c < sw; an ISA may
// bring a version that streams large outputs (`stream`), fence() then ending each task's streamed
// stores.
struct PlainSpread {
  static void row(const float* z, int64_t ldz, int64_t n, int64_t sw, float* dst, bool /*stream*/) {
    switch (sw) {
      case 1: return spread_row<1>(z, ldz, n, dst);
      case 2: return spread_row<2>(z, ldz, n, dst);
      case 3: return spread_row<3>(z, ldz, n, dst);
      case 4: return spread_row<4>(z, ldz, n, dst);
      default:
        for (int64_t m = 0; m < n; ++m)
          for (int64_t c = 0; c < sw; ++c) dst[m * sw + c] = z[c * ldz + m];
    }
  }
  static void fence() {}
};

// gx = the input gradient of s (+ bias[ch]) where applicable(s).
// gy: [N, OC, OD, OH, OW], w: [OC, C/G, KD, KH, KW], bias: [C] or null, gx: [N, C, D, H, W]
// pack(t, gyg, pc, kc, jc, nc, Bp) fills a block of B as conv_gemm.h's pack_conv_columns<Gemm::NR>.
template <class Gemm, class Spread, class Pack>
void subpixel_f32(const ConvShape& s, const float* gy, const float* w, const float* bias, float* gx, const Pack& pack) {
  constexpr int64_t kBlockFloats = 48 * 1024;  // Z's block: 192 KB of L2
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G, kvol = s.KD * s.KH * s.KW;
  const int64_t Kk[3] = {s.KD, s.KH, s.KW}, n[3] = {s.D, s.H, s.W};
  Axis ax[3];
  for (int i = 0; i < 3; ++i) ax[i] = axis_of(Kk[i], s.stride[i], s.pad[i], s.dilation[i], n[i]);
  const bool merged = mode_of(s) == Mode::merged;
  const int64_t sd = ax[0].s, sh = ax[1].s, sw = ax[2].s, phases = sd * sh * sw;
  const int64_t gw = ax[2].grid, grid_rows = ax[0].grid * ax[1].grid;
  const int64_t plane = s.D * s.H * s.W, gy_plane = s.OD * s.OH * s.OW;
  // Row blocks of whole channels, as even as they come, up to kMaxBlockRows rows of Z (more than
  // one channel's if a channel has more).
  const int64_t even_blocks = (Cg * phases + kMaxBlockRows - 1) / kMaxBlockRows;
  const int64_t block_channels = (Cg + even_blocks - 1) / even_blocks;
  const int64_t blocks = (Cg + block_channels - 1) / block_channels;
  // The GEMMs of a task: merged, one over all phases (rows (ch, phase)); split, one per phase
  // (rows ch, into every phases-th row of Z from the phase's). B: gy with the GEMM's kernel
  // (its taps' window), stride 1, padding lead, one column per m.
  struct Part {
    ConvShape t{};
    int64_t first_row = 0, rows_per_channel = 1, K = 0;
    std::vector<int64_t> a_offset;  // [G * blocks + 1]
  };
  std::vector<Part> parts;
  for (int64_t cd = 0; cd < (merged ? 1 : sd); ++cd)
    for (int64_t chh = 0; chh < (merged ? 1 : sh); ++chh)
      for (int64_t cw = 0; cw < (merged ? 1 : sw); ++cw) {
        Part part;
        part.first_row = merged ? 0 : (cd * sh + chh) * sw + cw;
        part.rows_per_channel = merged ? phases : 1;
        const Phase* ph[3] = {&ax[0].phase[cd], &ax[1].phase[chh], &ax[2].phase[cw]};
        ConvShape& t = part.t;
        t.N = 1, t.C = s.OC, t.D = s.OD, t.H = s.OH, t.W = s.OW, t.groups = G, t.OC = s.C;
        t.KD = ph[0]->E, t.KH = ph[1]->E, t.KW = ph[2]->E;
        t.OD = ax[0].grid, t.OH = ax[1].grid, t.OW = gw;
        for (int i = 0; i < 3; ++i) t.stride[i] = 1, t.dilation[i] = 1, t.pad[i] = ph[i]->lead;
        part.K = OCg * t.KD * t.KH * t.KW;  // 0: no tap reaches the phase
        parts.push_back(std::move(part));
      }
  int64_t a_total = 0;
  for (Part& part : parts) {
    part.a_offset.assign(static_cast<size_t>(G * blocks + 1), a_total);
    for (int64_t gb = 0; gb < G * blocks; ++gb) {
      const int64_t rows = std::min(block_channels, Cg - gb % blocks * block_channels) * part.rows_per_channel;
      part.a_offset[gb + 1] = part.a_offset[gb] + (part.K ? Gemm::packed_a_size(rows, part.K) : 0);
    }
    a_total = part.a_offset.back();
  }
  const auto Ap = call_buffer<float>(a_total);
  for (Part& part : parts) {
    if (part.K == 0) continue;
    const int64_t M = Cg * part.rows_per_channel, kd_n = part.t.KD, kh_n = part.t.KH, kw_n = part.t.KW;
    std::vector<float> a(static_cast<size_t>(M * part.K));  // one group's A
    for (int64_t g = 0; g < G; ++g) {
      // A[(ch, phase), (oc, jd, jh, jw)] = w[g*OCg + oc, ch, the phase's taps at (jd, jh, jw)]
      for (int64_t ch = 0; ch < Cg; ++ch)
        for (int64_t q = 0; q < part.rows_per_channel; ++q) {
          const int64_t phase = part.first_row + q, cw = phase % sw, chh = phase / sw % sh, cd = phase / (sw * sh);
          float* row = a.data() + (ch * part.rows_per_channel + q) * part.K;
          for (int64_t oc = 0; oc < OCg; ++oc)
            for (int64_t jd = 0; jd < kd_n; ++jd)
              for (int64_t jh = 0; jh < kh_n; ++jh)
                for (int64_t jw = 0; jw < kw_n; ++jw) {
                  const int64_t kd = ax[0].tap(cd, jd), kh = ax[1].tap(chh, jh), kw = ax[2].tap(cw, jw);
                  row[((oc * kd_n + jd) * kh_n + jh) * kw_n + jw] =
                      kd < 0 || kh < 0 || kw < 0 ? 0.0f : w[((g * OCg + oc) * Cg + ch) * kvol + (kd * s.KH + kh) * s.KW + kw];
                }
        }
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t r0 = b * block_channels * part.rows_per_channel;
        const int64_t rows = std::min(block_channels, Cg - b * block_channels) * part.rows_per_channel;
        Gemm::pack_a(a.data() + r0 * part.K, part.K, 1, rows, part.K, Ap.get() + part.a_offset[g * blocks + b]);
      }
    }
  }
  std::vector<float> row_bias(bias && merged ? static_cast<size_t>(s.C * phases) : 0);  // bias[ch] per Z row
  for (size_t i = 0; i < row_bias.size(); ++i) row_bias[i] = bias[i / phases];
  // Column tiles: runs of whole grid rows, or pieces of one long row.
  const int64_t tile_columns = std::max<int64_t>(Gemm::NR, kBlockFloats / (block_channels * phases) / Gemm::NR * Gemm::NR);
  const int64_t rows_per_tile = std::max<int64_t>(1, tile_columns / gw);
  const int64_t pieces = rows_per_tile > 1 ? 1 : (gw + tile_columns - 1) / tile_columns;
  const int64_t piece = (gw + pieces - 1) / pieces;
  const int64_t tiles = rows_per_tile > 1 ? (grid_rows + rows_per_tile - 1) / rows_per_tile : grid_rows * pieces;
  const int64_t z_columns = rows_per_tile > 1 ? rows_per_tile * gw : piece;
  const int64_t full_groups = s.W / sw, partial = s.W % sw;  // along W: complete groups of sw, then phases < partial
  const bool stream = s.N * s.C * plane * static_cast<int64_t>(sizeof(float)) >= kStreamStoreBytes;
  parallel_for(s.N * G * blocks * tiles, 1, [&](int64_t begin, int64_t end) {
    float* work = thread_scratch<float>(Gemm::KC * Gemm::NC, 0);
    float* z = thread_scratch<float>(block_channels * phases * z_columns, 1);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t tile = task % tiles, b = (task / tiles) % blocks, g = (task / (tiles * blocks)) % G;
      const int64_t img = task / (tiles * blocks * G);
      // grid rows [r0, r1), columns [m0, m1) of each; columns [j0, j0 + cols) of the GEMMs
      const int64_t r0 = rows_per_tile > 1 ? tile * rows_per_tile : tile / pieces;
      const int64_t r1 = rows_per_tile > 1 ? std::min(grid_rows, r0 + rows_per_tile) : r0 + 1;
      const int64_t m0 = rows_per_tile > 1 ? 0 : tile % pieces * piece;
      const int64_t m1 = rows_per_tile > 1 ? gw : std::min(gw, m0 + piece);
      const int64_t j0 = r0 * gw + m0, cols = rows_per_tile > 1 ? (r1 - r0) * gw : m1 - m0;
      const int64_t c0 = b * block_channels, channels = std::min(block_channels, Cg - c0);
      const float* gyg = gy + (img * s.OC + g * OCg) * gy_plane;
      for (const Part& part : parts) {
        float* zp = z + part.first_row * z_columns;
        const int64_t ldz = (merged ? 1 : phases) * z_columns;
        if (part.K == 0) {  // a phase no tap reaches: the bias alone
          for (int64_t c = 0; c < channels; ++c)
            std::fill(zp + c * ldz, zp + c * ldz + cols, bias ? bias[g * Cg + c0 + c] : 0.0f);
          continue;
        }
        gemm_common::Epilogue ep;
        if (bias) ep.row_bias = merged ? row_bias.data() + (g * Cg + c0) * phases : bias + g * Cg + c0;
        Gemm::gemm_columns(channels * part.rows_per_channel, part.K, Ap.get() + part.a_offset[g * blocks + b],
                           [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                             pack(part.t, gyg, pc, kc, j0 + jc, nc, Bp);
                           },
                           0, cols, zp, ldz, ep, work);
      }
      const int64_t whole = std::max<int64_t>(0, std::min(m1, full_groups) - m0);  // complete groups of sw here
      for (int64_t c = 0; c < channels; ++c) {
        float* gxc = gx + (img * s.C + g * Cg + c0 + c) * plane;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t md = r / ax[1].grid, mh = r % ax[1].grid;
          const int64_t zc = rows_per_tile > 1 ? (r - r0) * gw : 0;
          for (int64_t cd = 0; cd < sd; ++cd)
            for (int64_t chh = 0; chh < sh; ++chh) {
              const int64_t d = cd + sd * md, h = chh + sh * mh;
              if (d >= s.D || h >= s.H) continue;
              float* dst = gxc + (d * s.H + h) * s.W + m0 * sw;
              const float* zr = z + ((c * sd + cd) * sh + chh) * sw * z_columns + zc;
              Spread::row(zr, z_columns, whole, sw, dst, stream);
              if (partial && m1 > full_groups)  // the last, partial group: phases below W % sw
                for (int64_t cw = 0; cw < partial; ++cw) dst[whole * sw + cw] = zr[cw * z_columns + whole];
            }
        }
      }
    }
    Spread::fence();
  });
}

template <class Gemm, class Spread = PlainSpread>
void subpixel_f32(const ConvShape& s, const float* gy, const float* w, const float* bias, float* gx) {
  subpixel_f32<Gemm, Spread>(s, gy, w, bias, gx, conv_gemm::pack_conv_columns<Gemm::NR>);
}

}  // namespace
}  // namespace conv_subpixel
}  // namespace medconv
