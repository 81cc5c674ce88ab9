// The input gradient of a convolution whose kernel equals its stride, without padding (a patch conv:
// 2x2 stride 2, 2x2x2 stride 2), and so the transposed convolution of U-Net up-sampling layers, over
// any ISA's packed SGEMM. The windows tile x without overlapping, so each gx element takes one tap:
//   gx[n, c, od*sd + a, oh*sh + b, ow*sw + e] = bias[c] + sum_oc w[oc, c, a, b, e] gy[n, oc, od, oh, ow],
// one GEMM per image and group, Z[(c, a, b, e), p] = sum_oc w[oc, c, a, b, e] gy[oc, p] over gy's pixels p.
// A task takes a block of Z's rows (whole channels) by a run of gy's rows, computes it into a buffer
// that stays in L2 and spreads it into gx's rows, each written once. (conv_phases.cpp's general path
// runs one stride-1 conv per tap, each reading all of gy, into a buffer as large as gx, and then
// interleaves that buffer into gx.) Elements past the last window (output_padding) get bias[c] or 0.
// Internal linkage throughout (see gemm_common.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "aligned.h"
#include "gemm_common.h"
#include "kernels.h"
#include "memory.h"
#include "parallel.h"

namespace medconv {
namespace conv_unpatch {
namespace {

// Whether s's windows tile its input: kernel == stride along each axis, no padding, and more than
// one tap (one tap with stride 1 is a plain 1x1 conv).
inline bool applicable(const ConvShape& s) {
  const int64_t K[3] = {s.KD, s.KH, s.KW};
  for (int i = 0; i < 3; ++i)
    if (K[i] != s.stride[i] || s.pad[i] != 0 || (K[i] > 1 && s.dilation[i] != 1)) return false;
  return s.KD * s.KH * s.KW > 1;
}

// dst[ow * SW + e] = z[e * ldz + ow] for ow < n, e < SW (a compile-time SW lets the compiler
// interleave whole vectors).
template <int SW>
inline void spread_row(const float* z, int64_t ldz, int64_t n, float* dst) {
  for (int64_t ow = 0; ow < n; ++ow)
    for (int e = 0; e < SW; ++e) dst[ow * SW + e] = z[e * ldz + ow];
}

// How a task writes one row of gx: dst[ow * sw + e] = z[e * ldz + ow] for ow < n, e < sw, then
// dst[n * sw, n * sw + tail) = value; an ISA may bring a version that streams large outputs
// (`stream`), fence() then ending each task's streamed stores.
struct PlainSpread {
  static void row(const float* z, int64_t ldz, int64_t n, int64_t sw, float* dst, int64_t tail, float value,
                  bool /*stream*/) {
    switch (sw) {
      case 1: spread_row<1>(z, ldz, n, dst); break;
      case 2: spread_row<2>(z, ldz, n, dst); break;
      case 3: spread_row<3>(z, ldz, n, dst); break;
      case 4: spread_row<4>(z, ldz, n, dst); break;
      default:
        for (int64_t ow = 0; ow < n; ++ow)
          for (int64_t e = 0; e < sw; ++e) dst[ow * sw + e] = z[e * ldz + ow];
    }
    std::fill(dst + n * sw, dst + n * sw + tail, value);
  }
  static void fence() {}
};

// gx = the input gradient of s (+ bias[c]) where applicable(s).
// gy: [N, OC, OD, OH, OW], w: [OC, C/G, KD, KH, KW], bias: [C] or null, gx: [N, C, D, H, W]
template <class Gemm, class Spread = PlainSpread>
void unpatch_f32(const ConvShape& s, const float* gy, const float* w, const float* bias, float* gx) {
  constexpr int64_t kMaxBlockRows = 256, kBlockFloats = 48 * 1024;  // Z's block: 192 KB of L2
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t kvol = s.KD * s.KH * s.KW, M = Cg * kvol;
  const int64_t sd = s.stride[0], sh = s.stride[1], sw = s.stride[2];
  const int64_t Nsp = s.OD * s.OH * s.OW, plane = s.D * s.H * s.W;
  // Row blocks of whole channels, as even as they come, up to kMaxBlockRows rows (more than one
  // channel's if a channel has more), each packed on its own.
  const int64_t even_blocks = (M + kMaxBlockRows - 1) / kMaxBlockRows;
  const int64_t block_channels = (Cg + even_blocks - 1) / even_blocks;
  const int64_t blocks = (Cg + block_channels - 1) / block_channels;
  const int64_t tile_columns = std::max<int64_t>(Gemm::NR, kBlockFloats / (block_channels * kvol) / Gemm::NR * Gemm::NR);
  std::vector<int64_t> a_offset(static_cast<size_t>(G * blocks + 1), 0);
  for (int64_t gb = 0; gb < G * blocks; ++gb) {
    const int64_t rows = std::min(block_channels, Cg - gb % blocks * block_channels) * kvol;
    a_offset[gb + 1] = a_offset[gb] + Gemm::packed_a_size(rows, OCg);
  }
  const auto Ap = call_buffer<float>(a_offset.back());
  std::vector<float> row_bias(bias ? static_cast<size_t>(G * M) : 0);
  for (int64_t g = 0; g < G; ++g) {
    // A(i, k) = w[g*OCg + k, c, a, b, e] for row i = c*kvol + (a*KH + b)*KW + e of the group
    const float* wg = w + g * OCg * M;
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * block_channels, rows = std::min(block_channels, Cg - c0) * kvol;
      Gemm::pack_a(wg + c0 * kvol, 1, M, rows, OCg, Ap.get() + a_offset[g * blocks + b]);
    }
    if (bias)
      for (int64_t i = 0; i < M; ++i) row_bias[g * M + i] = bias[g * Cg + i / kvol];
  }
  // Column tiles: runs of whole gy rows, or pieces of one long row.
  const int64_t rows_per_tile = std::max<int64_t>(1, tile_columns / s.OW);
  const int64_t pieces = rows_per_tile > 1 ? 1 : (s.OW + tile_columns - 1) / tile_columns;
  const int64_t piece = (s.OW + pieces - 1) / pieces;
  const int64_t gy_rows = s.OD * s.OH;
  const int64_t tiles = rows_per_tile > 1 ? (gy_rows + rows_per_tile - 1) / rows_per_tile : gy_rows * pieces;
  const int64_t z_columns = rows_per_tile > 1 ? rows_per_tile * s.OW : piece;
  const float fill_value = 0.0f;
  const bool stream = s.N * s.C * plane * static_cast<int64_t>(sizeof(float)) >= kStreamStoreBytes;
  parallel_for(s.N * G * blocks * tiles, 1, [&](int64_t begin, int64_t end) {
    float* work = thread_scratch<float>(Gemm::KC * Gemm::NC, 0);
    float* z = thread_scratch<float>(block_channels * kvol * z_columns, 1);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tile = t % tiles, b = (t / tiles) % blocks, g = (t / (tiles * blocks)) % G;
      const int64_t n = t / (tiles * blocks * G);
      // gy rows [r0, r1), columns [ow0, ow1) of each; pixels [j0, j0 + cols) of the image
      const int64_t r0 = rows_per_tile > 1 ? tile * rows_per_tile : tile / pieces;
      const int64_t r1 = rows_per_tile > 1 ? std::min(gy_rows, r0 + rows_per_tile) : r0 + 1;
      const int64_t ow0 = rows_per_tile > 1 ? 0 : tile % pieces * piece;
      const int64_t ow1 = rows_per_tile > 1 ? s.OW : std::min(s.OW, ow0 + piece);
      const int64_t j0 = r0 * s.OW + ow0, cols = rows_per_tile > 1 ? (r1 - r0) * s.OW : ow1 - ow0;
      const int64_t c0 = b * block_channels, channels = std::min(block_channels, Cg - c0);
      const float* gyg = gy + (n * s.OC + g * OCg) * Nsp + j0;
      gemm_common::Epilogue ep;
      ep.row_bias = bias ? row_bias.data() + g * M + c0 * kvol : nullptr;
      Gemm::gemm_columns(channels * kvol, OCg, Ap.get() + a_offset[g * blocks + b],
                         [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                           gemm_common::pack_rows<Gemm::NR>(gyg, Nsp, pc, kc, jc, nc, Bp);
                         },
                         0, cols, z, z_columns, ep, work);
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t ch = g * Cg + c0 + c;
        float* gxc = gx + (n * s.C + ch) * plane;
        const float tail = bias ? bias[ch] : fill_value;
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t od = r / s.OH, oh = r % s.OH;
          const int64_t zc = (r - r0) * (rows_per_tile > 1 ? s.OW : 0);
          for (int64_t a = 0; a < s.KD; ++a)
            for (int64_t bh = 0; bh < s.KH; ++bh) {
              float* dst = gxc + ((od * sd + a) * s.H + oh * sh + bh) * s.W;
              const float* zr = z + (c * kvol + (a * s.KH + bh) * s.KW) * z_columns + zc;
              const int64_t past = ow1 == s.OW ? s.W - s.OW * sw : 0;  // elements past the last window
              Spread::row(zr, z_columns, ow1 - ow0, sw, dst + ow0 * sw, past, tail, stream);
            }
        }
      }
    }
    Spread::fence();
  });
  // gx's rows past the last window along d and h (output_padding)
  if (s.D > s.OD * sd || s.H > s.OH * sh) {
    parallel_for(s.N * s.C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const float v = bias ? bias[p % s.C] : fill_value;
        float* gxc = gx + p * plane;
        for (int64_t d = 0; d < s.D; ++d)
          for (int64_t h = 0; h < s.H; ++h)
            if (d >= s.OD * sd || h >= s.OH * sh) std::fill(gxc + (d * s.H + h) * s.W, gxc + (d * s.H + h + 1) * s.W, v);
      }
    });
  }
}

}  // namespace
}  // namespace conv_unpatch
}  // namespace medconv
