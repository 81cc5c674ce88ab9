// Packed SGEMM micro-kernel and driver, AVX2+FMA (see gemm_avx2.h).
#include "gemm_avx2.h"
#include "gemm_common.h"
#include "gemm_epilogue_avx2.h"
#include "packed_gemm.h"
#include "tile6x16_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace medconv {
namespace gemm {

int64_t packed_a_size(int64_t M, int64_t K) { return gemm_common::packed_a_size<MR>(M, K); }

void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
  gemm_common::pack_a<MR>(a, lda, ska, M, K, Ap);
}

namespace {

// acc[r][0..15] = sum_k Ap[k][r] * Bp[k][0..15]; then C[r][0..nr) = (accumulate ? C : 0) + acc (+ epilogue)
// Ap: [kc][MR], Bp: [kc][NR], C: rows of stride ldc
inline void micro_kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                         bool accumulate, bool last, const float* row_bias, const float* col_bias, bool relu) {
  const __m256 z = _mm256_setzero_ps();
  avx2::Tile6x16 t{z, z, z, z, z, z, z, z, z, z, z, z};
  for (int r = 0; r < mr; ++r) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(Ap + (k + 16) * MR), _MM_HINT_T0);
    avx2::rank1_update(t, Ap + k * MR, _mm256_load_ps(Bp + k * NR), _mm256_load_ps(Bp + k * NR + 8));
  }
  auto store_row = [&](int r, __m256 v0, __m256 v1) {
    avx2::epilogue_row(C + r * ldc, v0, v1, accumulate, row_bias ? row_bias + r : nullptr, col_bias, last && relu);
  };
  if (mr == MR && nr == NR) {  // a full tile: the epilogue straight from the registers
    avx2::for_each_row(t, store_row);
    return;
  }
  alignas(32) float tile[MR][NR];
  avx2::for_each_row(t, [&](int r, __m256 v0, __m256 v1) {
    _mm256_store_ps(tile[r], v0);
    _mm256_store_ps(tile[r] + 8, v1);
  });
  avx2::epilogue_partial(tile, C, ldc, mr, nr, accumulate, last, row_bias, col_bias, relu);
}

}  // namespace

void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work) {
  gemm_common::gemm_blocked<MR, NR, KC, NC>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work,
                                            [](auto... args) { micro_kernel(args...); });
}

}  // namespace gemm

const PackedGemm& packed_gemm_avx2() {
  static_assert(gemm::MR <= kPackedMaxRows && gemm::NR <= kPackedMaxColumns && gemm::KC <= kPackedMaxKc, "fits");
  static_assert(gemm::NR == 16 && gemm::NC >= kPanel16MinNc, "AVX2's GEMM is panel16_gemm's too");
  static const PackedGemm g{gemm::MR, gemm::NR, gemm::KC, gemm::NC, gemm::packed_a_size, gemm::pack_a, gemm::gemm_columns};
  return g;
}

}  // namespace medconv
