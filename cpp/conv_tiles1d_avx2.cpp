// 1D convolutions with many channels (conv1d, and any conv whose kernel and input run along W
// only), AVX2+FMA, float32: the SGEMM's 6 x 16 register tile (tile6x16_avx2.h), or on AVX-512 an
// 8 x 32 one (conv_tiles1d_avx512.cpp), reading its columns straight from zero-padded input rows,
// where the implicit GEMM packs every column for few output rows (16x64x2500 -> 64, kernel 7: 1.4x
// faster on either ISA). Any stride and dilation along W: a stride s splits each padded row into s
// phase rows, so that every tap reads consecutive floats.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "aligned.h"
#include "avx512_kernels.h"
#include "conv_direct_avx2.h"
#include "gemm_avx2.h"
#include "packed_gemm.h"
#include "parallel.h"
#include "phase_rows_avx2.h"
#include "tile6x16_avx2.h"

namespace medconv {

namespace {

constexpr int64_t kBlock = 256;  // outputs per task: a group's padded rows for them stay in L2
constexpr int kMaxTile = 32;     // columns per tile: 16 (AVX2), 32 (AVX-512)

struct Layout {
  int64_t Cg, OCg, K, panels, S, row_len;  // row_len: floats per phase row
  std::vector<int64_t> tap_offset;         // tap k: its phase row and column within a channel's rows
};

Layout layout(const ConvShape& s, int mr) {
  Layout L;
  L.Cg = s.C / s.groups;
  L.OCg = s.OC / s.groups;
  L.K = L.Cg * s.KW;
  L.panels = (L.OCg + mr - 1) / mr;

  L.S = s.stride[2];
  const int64_t reach = (s.KW - 1) * s.dilation[2];
  L.row_len = kBlock + reach / L.S + kMaxTile;
  for (int64_t k = 0; k < s.KW; ++k) {
    const int64_t q = k * s.dilation[2];
    L.tap_offset.push_back(phase_tap_offset(q, L.S, L.row_len));
  }
  return L;
}

// rows[c][p][j] = x[c, (ow0 + j) S + p - pad] inside [0, W), else 0, for j < row_len.
// xg: [Cg, W] of one image and group
void fill_phase_rows(const ConvShape& s, const Layout& L, const float* xg, int64_t ow0, float* rows) {
  for (int64_t c = 0; c < L.Cg; ++c)
    split_row_phases(xg + c * s.W, s.W, ow0 * L.S - s.pad[2], L.S, L.row_len, rows + c * L.S * L.row_len);
}

// One tile: y rows r < mr, columns < nr = act(bias[r] + sum over (c, k) in order of a[c, k][r] *
// b_{c,k}[0..16)), with b_{c,k} = rows + c S row_len + tap_offset[k] + j.
template <int MR>
void tile(const Layout& L, const float* ap, const float* rows, int64_t j, const float* bias_rows, float* y,
          int64_t ldy, int mr, int nr, bool relu) {
  avx2::Tile6x16 t = avx2::bias_tile(bias_rows);
  const int64_t KW = static_cast<int64_t>(L.tap_offset.size()), channel_stride = L.S * L.row_len;
  const int64_t* off = L.tap_offset.data();
  const float* a = ap;
  for (int64_t c = 0; c < L.Cg; ++c) {
    const float* base = rows + c * channel_stride + j;
#pragma GCC unroll 4
    for (int64_t k = 0; k < KW; ++k, a += gemm::MR) {  // AVX2's packing: packed_gemm_avx2's mr
      const float* b = base + off[k];
      avx2::rank1_update<MR>(t, a, _mm256_loadu_ps(b), _mm256_loadu_ps(b + 8));
    }
  }
  avx2::store_tile(t, y, ldy, mr, nr, relu);
}

}  // namespace

bool conv_tiles1d_applies(const ConvShape& s) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  // one output row: no padding along D or H (a padded (N, C, 1, W) input has rows of bias only)
  const bool one_row = s.D == 1 && s.H == 1 && s.OD == 1 && s.OH == 1 && s.pad[0] == 0 && s.pad[1] == 0;
  return s.KD == 1 && s.KH == 1 && one_row && OCg >= 8 && Cg * s.KW >= 32 && s.stride[2] <= 4 &&
         s.dilation[2] * (s.KW - 1) < kBlock;
}

void conv_tiles1d_avx2_f32(const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                           bool relu, Isa isa) {
  const bool wide = isa == Isa::avx512;
  const PackedGemm& packer = widest_gemm(isa);  // its A panels: the tiles' weights, [K][mr]
  const int MR = packer.mr, tile_cols = wide ? 32 : 16;
  const Layout L = layout(s, MR);
  const int64_t G = s.groups, blocks = (s.OW + kBlock - 1) / kBlock;
  const int64_t panel_floats = L.K * MR;
  std::unique_ptr<float, FreeDeleter> packed = aligned_floats(G * L.panels * panel_floats);  // [G][panels][K][MR]
  for (int64_t g = 0; g < G; ++g)
    packer.pack_a(w + g * L.OCg * L.K, L.K, 1, L.OCg, L.K, packed.get() + g * L.panels * panel_floats);
  const int64_t row_floats = L.Cg * L.S * L.row_len;
  parallel_for(s.N * G * blocks, 1, [&](int64_t begin, int64_t end) {
    float* rows = thread_scratch<float>(row_floats, 5);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t % blocks, g = (t / blocks) % G, n = t / (blocks * G);
      const int64_t ow0 = b * kBlock, ow1 = std::min(s.OW, ow0 + kBlock);
      fill_phase_rows(s, L, x + (n * s.C + g * L.Cg) * s.W, ow0, rows);
      for (int64_t p = 0; p < L.panels; ++p) {
        const int64_t oc0 = g * L.OCg + p * MR;
        const int mr = static_cast<int>(std::min<int64_t>(MR, L.OCg - p * MR));
        alignas(32) float bias_rows[kPackedMaxRows] = {};
        for (int r = 0; r < mr; ++r) bias_rows[r] = bias ? bias[oc0 + r] : 0.0f;
        const float* ap = packed.get() + (g * L.panels + p) * panel_floats;
        float* yp = y + (n * s.OC + oc0) * s.OW;
        for (int64_t ow = ow0; ow < ow1; ow += tile_cols) {
          const int nr = static_cast<int>(std::min<int64_t>(tile_cols, ow1 - ow));
          if (wide)
            conv_tiles1d_tile_avx512(ap, rows, ow - ow0, L.tap_offset.data(), static_cast<int64_t>(L.tap_offset.size()),
                                     L.Cg, L.S * L.row_len, bias_rows, yp + ow, s.OW, mr, nr, relu);
          else if (mr > 4) tile<6>(L, ap, rows, ow - ow0, bias_rows, yp + ow, s.OW, mr, nr, relu);
          else if (mr > 2) tile<4>(L, ap, rows, ow - ow0, bias_rows, yp + ow, s.OW, mr, nr, relu);
          else tile<2>(L, ap, rows, ow - ow0, bias_rows, yp + ow, s.OW, mr, nr, relu);
        }
      }
    }
  });
}

}  // namespace medconv
