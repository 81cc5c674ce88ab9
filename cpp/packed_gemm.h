// The packed SGEMMs as run-time values, for kernels compiled once (with the AVX2 flags) that run on
// whichever GEMM the active ISA has: AVX2's 6x16 tile (gemm_avx2.h), AVX-512's 8x32 and 16x16
// (gemm_avx512.h). All share gemm_common.h's layouts: A packed in mr-row panels, B in nr-column
// panels ([kc][nr] each) filled by a caller-given packer.
#pragma once
#include <cstdint>

#include "dispatch.h"
#include "gemm_common.h"

namespace medconv {

constexpr int kPackedMaxRows = 16;     // the largest mr
constexpr int kPackedMaxColumns = 32;  // the largest nr
constexpr int64_t kPackedMaxKc = 256;  // the largest kc

struct PackedGemm {
  int mr;      // rows per packed A panel
  int nr;      // columns per packed B panel
  int64_t kc;  // deepest K pass; gemm_columns packs B per (kc x nc) block
  int64_t nc;  // widest column block (a multiple of nr)
  int64_t (*packed_a_size)(int64_t M, int64_t K);
  // Ap: [ceil(M / mr)][K][mr], rows past M zero. A(i, k) = a[i * lda + k * ska].
  void (*pack_a)(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap);
  // C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1), single-threaded; work: kc * nc floats
  gemm_common::GemmColumnsOf<float> gemm_columns;
};

const PackedGemm& packed_gemm_avx2();          // 6 x 16, gemm_avx2.cpp
const PackedGemm& packed_gemm_avx512();        // 8 x 32, gemm_avx512.cpp
const PackedGemm& packed_gemm_avx512_16x16();  // 16 x 16, gemm_avx512.cpp

// A GEMM over 16-column panels, which Winograd's input transforms write: AVX2's 6x16 or AVX-512's
// 16x16, each with column blocks of at least kPanel16MinNc.
constexpr int64_t kPanel16MinNc = 192;

namespace {  // internal linkage: AVX-512 files include this too (see gemm_common.h)

inline const PackedGemm& panel16_gemm(Isa isa) {
  return isa == Isa::avx512 ? packed_gemm_avx512_16x16() : packed_gemm_avx2();
}
// The ISA's fastest GEMM where the B packer takes any panel width: AVX2's 6x16 or AVX-512's 8x32.
inline const PackedGemm& widest_gemm(Isa isa) { return isa == Isa::avx512 ? packed_gemm_avx512() : packed_gemm_avx2(); }

}  // namespace

}  // namespace medconv
