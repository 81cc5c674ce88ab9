// A packed SGEMM over B panels 16 columns wide ([kc][16] each), chosen at run time: AVX2's 6x16
// tile (gemm_avx2.h) or AVX-512's 16x16 (gemm_avx512.h). Winograd, whose input transform writes
// 16-tile panels, and the weight gradient's column packer run on either; only A's packing (mr rows
// per panel) and the blocking differ.
#pragma once
#include <cstdint>

#include "dispatch.h"
#include "gemm_common.h"

namespace medconv {

constexpr int kPanelColumns = 16;
constexpr int kPanelMaxRows = 16;  // the largest mr
constexpr int64_t kPanelMaxKc = 256;  // the largest kc

struct PanelGemm {
  int mr;      // rows per packed A panel
  int64_t kc;  // deepest K pass; gemm_columns packs B per (kc x nc) block
  int64_t nc;  // widest column block (a multiple of 16)
  int64_t (*packed_a_size)(int64_t M, int64_t K);
  // Ap: [ceil(M / mr)][K][mr], rows past M zero. A(i, k) = a[i * lda + k * ska].
  void (*pack_a)(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap);
  // C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1), single-threaded; work: kc * nc floats
  gemm_common::GemmColumnsOf<float> gemm_columns;
};

const PanelGemm& panel_gemm_avx2();    // gemm_avx2.cpp
const PanelGemm& panel_gemm_avx512();  // gemm_avx512.cpp
inline const PanelGemm& panel_gemm(Isa isa) { return isa == Isa::avx512 ? panel_gemm_avx512() : panel_gemm_avx2(); }

}  // namespace medconv
