// The input gradient of a strided convolution, and so the transposed convolution of U-Net decoders,
// as one stride-1 convolution of gy with s_d * s_h * s_w outputs per channel of gx (a sub-pixel
// convolution), over any ISA's packed SGEMM. Along an axis with stride s and padding p (dilation 1),
// gx[c + s*m] sums w[k] gy[m + e] over the taps k of phase c, e = (c + p - k) / s; the offsets e of
// all phases lie in one window [-lead, E - lead), so with
//   A[(ch, c_d, c_h, c_w), (oc, j_d, j_h, j_w)] = w[oc, ch, k_d, k_h, k_w] (the tap of phase c at
//   offset j - lead along each axis, or 0 where the phase has none),
//   B = the im2col columns of gy for a kernel E, stride 1, padding lead, one column per m,
// gx[ch, c + s*m] = bias[ch] + (A B)[(ch, c), m]. A task computes a block of rows (whole channels)
// by a run of m's rows into a buffer that stays in L2 and spreads it into gx's rows, each written
// once. Where the windows tile gx (kernel == stride, no padding: 2x2 / 2x2x2 stride 2) E = 1 and A
// has no zeros; so for kernel 2s, padding 0 (E = 2). Where A would have zeros (3x3 stride 2: 9 taps
// in 16 slots per phase set), conv_phases.cpp runs the phases as separate convs. Internal linkage
// throughout (see gemm_common.h).
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

// One axis: stride s, the window of offsets e of every phase's taps, E wide from -lead, and the
// grid of m's, ceil(n / s) for gx's n (its last group of s may be partial).
struct Axis {
  int64_t s = 1, E = 1, lead = 0, grid = 1;
  bool ok = true;  // dilation 1, and a window that starts at or before offset 0 (lead >= 0)
};

inline Axis axis_of(int64_t K, int64_t s, int64_t p, int64_t dil, int64_t n) {
  Axis a;
  a.s = s;
  a.grid = (n + s - 1) / s;
  if (K > 1 && dil != 1) a.ok = false;
  int64_t lo = 0, hi = -1;
  bool any = false;
  for (int64_t c = 0; c < s; ++c)
    for (int64_t k = 0; k < K; ++k)
      if (((c + p - k) % s + s) % s == 0) {
        const int64_t e = (c + p - k) / s;
        lo = any ? std::min(lo, e) : e, hi = any ? std::max(hi, e) : e;
        any = true;
      }
  if (!any) return a.ok = false, a;
  a.lead = -lo;
  a.E = hi - lo + 1;
  if (a.lead < 0) a.ok = false;
  return a;
}

// The tap of phase c at window offset j (offset e = j - lead), or -1.
inline int64_t tap_of(const Axis& a, int64_t K, int64_t p, int64_t c, int64_t j) {
  const int64_t k = c + p - (j - a.lead) * a.s;
  return k >= 0 && k < K ? k : -1;
}

// Whether s's input gradient runs here: dilation 1, a stride above 1, and no zeros in A (s * E == K
// along each axis: kernel == stride, or a multiple of it without padding). With zeros the phase
// convs were as fast or faster: 3x3 stride 2 (16 slots of A per 9 taps) 0.93-1.05x, 3x3x3 stride 2
// 0.93-1.05x, 4x4 stride 2 padding 1 0.77-0.89x; 4x4 stride 2 without padding (no zeros) 1.32x.
inline bool applicable(const ConvShape& s) {
  const int64_t K[3] = {s.KD, s.KH, s.KW}, n[3] = {s.D, s.H, s.W};
  bool strided = false;
  for (int i = 0; i < 3; ++i) {
    const Axis a = axis_of(K[i], s.stride[i], s.pad[i], s.dilation[i], n[i]);
    if (!a.ok || a.s * a.E != K[i]) return false;
    strided = strided || s.stride[i] > 1;
  }
  return strided;
}

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
  constexpr int64_t kMaxBlockRows = 256, kBlockFloats = 48 * 1024;  // Z's block: 192 KB of L2
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t Kk[3] = {s.KD, s.KH, s.KW}, n[3] = {s.D, s.H, s.W};
  Axis ax[3];
  for (int i = 0; i < 3; ++i) ax[i] = axis_of(Kk[i], s.stride[i], s.pad[i], s.dilation[i], n[i]);
  const int64_t phases = ax[0].s * ax[1].s * ax[2].s, window = ax[0].E * ax[1].E * ax[2].E;
  const int64_t M = Cg * phases, K = OCg * window, kvol = s.KD * s.KH * s.KW;
  const int64_t sd = ax[0].s, sh = ax[1].s, sw = ax[2].s;
  const int64_t gw = ax[2].grid, grid_rows = ax[0].grid * ax[1].grid;
  const int64_t plane = s.D * s.H * s.W, gy_plane = s.OD * s.OH * s.OW;
  // B's conv: gy (one image, one group) with kernel E, stride 1, padding lead, one output per m
  ConvShape t{};
  t.N = 1, t.C = s.OC, t.D = s.OD, t.H = s.OH, t.W = s.OW, t.groups = G;
  t.OC = s.C, t.KD = ax[0].E, t.KH = ax[1].E, t.KW = ax[2].E;
  t.OD = ax[0].grid, t.OH = ax[1].grid, t.OW = gw;
  for (int i = 0; i < 3; ++i) t.stride[i] = 1, t.dilation[i] = 1, t.pad[i] = ax[i].lead;
  // Row blocks of whole channels, as even as they come, up to kMaxBlockRows rows (more than one
  // channel's if a channel has more), each packed on its own.
  const int64_t even_blocks = (M + kMaxBlockRows - 1) / kMaxBlockRows;
  const int64_t block_channels = (Cg + even_blocks - 1) / even_blocks;
  const int64_t blocks = (Cg + block_channels - 1) / block_channels;
  std::vector<int64_t> a_offset(static_cast<size_t>(G * blocks + 1), 0);
  for (int64_t gb = 0; gb < G * blocks; ++gb) {
    const int64_t rows = std::min(block_channels, Cg - gb % blocks * block_channels) * phases;
    a_offset[gb + 1] = a_offset[gb] + Gemm::packed_a_size(rows, K);
  }
  const auto Ap = call_buffer<float>(a_offset.back());
  std::vector<float> row_bias(bias ? static_cast<size_t>(G * M) : 0);
  {
    std::vector<float> a(static_cast<size_t>(M * K));  // one group's A
    for (int64_t g = 0; g < G; ++g) {
      std::fill(a.begin(), a.end(), 0.0f);
      for (int64_t ch = 0; ch < Cg; ++ch)
        for (int64_t cd = 0; cd < sd; ++cd)
          for (int64_t chh = 0; chh < sh; ++chh)
            for (int64_t cw = 0; cw < sw; ++cw)
              for (int64_t jd = 0; jd < ax[0].E; ++jd)
                for (int64_t jh = 0; jh < ax[1].E; ++jh)
                  for (int64_t jw = 0; jw < ax[2].E; ++jw) {
                    const int64_t kd = tap_of(ax[0], s.KD, s.pad[0], cd, jd);
                    const int64_t kh = tap_of(ax[1], s.KH, s.pad[1], chh, jh);
                    const int64_t kw = tap_of(ax[2], s.KW, s.pad[2], cw, jw);
                    if (kd < 0 || kh < 0 || kw < 0) continue;
                    const int64_t row = ((ch * sd + cd) * sh + chh) * sw + cw;
                    for (int64_t oc = 0; oc < OCg; ++oc)
                      a[row * K + ((oc * ax[0].E + jd) * ax[1].E + jh) * ax[2].E + jw] =
                          w[((g * OCg + oc) * Cg + ch) * kvol + (kd * s.KH + kh) * s.KW + kw];
                  }
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t r0 = b * block_channels * phases, rows = std::min(block_channels, Cg - b * block_channels) * phases;
        Gemm::pack_a(a.data() + r0 * K, K, 1, rows, K, Ap.get() + a_offset[g * blocks + b]);
      }
      if (bias)
        for (int64_t i = 0; i < M; ++i) row_bias[g * M + i] = bias[g * Cg + i / phases];
    }
  }
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
      // grid rows [r0, r1), columns [m0, m1) of each; columns [j0, j0 + cols) of the GEMM
      const int64_t r0 = rows_per_tile > 1 ? tile * rows_per_tile : tile / pieces;
      const int64_t r1 = rows_per_tile > 1 ? std::min(grid_rows, r0 + rows_per_tile) : r0 + 1;
      const int64_t m0 = rows_per_tile > 1 ? 0 : tile % pieces * piece;
      const int64_t m1 = rows_per_tile > 1 ? gw : std::min(gw, m0 + piece);
      const int64_t j0 = r0 * gw + m0, cols = rows_per_tile > 1 ? (r1 - r0) * gw : m1 - m0;
      const int64_t c0 = b * block_channels, channels = std::min(block_channels, Cg - c0);
      const float* gyg = gy + (img * s.OC + g * OCg) * gy_plane;
      gemm_common::Epilogue ep;
      ep.row_bias = bias ? row_bias.data() + g * M + c0 * phases : nullptr;
      Gemm::gemm_columns(channels * phases, K, Ap.get() + a_offset[g * blocks + b],
                         [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                           pack(t, gyg, pc, kc, j0 + jc, nc, Bp);
                         },
                         0, cols, z, z_columns, ep, work);
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
