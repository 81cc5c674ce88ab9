// Packed SGEMM micro-kernel and driver, AArch64 NEON (see gemm_neon.h).
#include "gemm_neon.h"

#include <arm_neon.h>

#include "gemm_common.h"

namespace medconv {
namespace gemm_neon {

int64_t packed_a_size(int64_t M, int64_t K) { return gemm_common::packed_a_size<MR>(M, K); }

void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
  gemm_common::pack_a<MR>(a, lda, ska, M, K, Ap);
}

namespace {

// acc[r][0..11] = sum_k Ap[k][r] * Bp[k][0..11] (k in order); then for r < mr, j < nr:
// C[r][j] = (accumulate ? C[r][j] : row_bias[r] or col_bias[j] or 0) + acc[r][j], relu'd when last.
// Ap: [kc][MR], Bp: [kc][NR], C: rows of stride ldc
void micro_kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                  bool accumulate, bool last, const float* row_bias, const float* col_bias, bool relu) {
  float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
  float32x4_t c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
  float32x4_t c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
  float32x4_t c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    __builtin_prefetch(Bp + (k + 8) * NR);
    __builtin_prefetch(Ap + (k + 8) * MR);
    const float32x4_t a0 = vld1q_f32(Ap + k * MR), a1 = vld1q_f32(Ap + k * MR + 4);
    const float32x4_t b0 = vld1q_f32(Bp + k * NR), b1 = vld1q_f32(Bp + k * NR + 4), b2 = vld1q_f32(Bp + k * NR + 8);
    // c[r][j] += b_j * a[r]: row r's A value is lane r % 4 of a0 (rows 0-3) or a1 (rows 4-7)
    c00 = vfmaq_laneq_f32(c00, b0, a0, 0); c01 = vfmaq_laneq_f32(c01, b1, a0, 0); c02 = vfmaq_laneq_f32(c02, b2, a0, 0);
    c10 = vfmaq_laneq_f32(c10, b0, a0, 1); c11 = vfmaq_laneq_f32(c11, b1, a0, 1); c12 = vfmaq_laneq_f32(c12, b2, a0, 1);
    c20 = vfmaq_laneq_f32(c20, b0, a0, 2); c21 = vfmaq_laneq_f32(c21, b1, a0, 2); c22 = vfmaq_laneq_f32(c22, b2, a0, 2);
    c30 = vfmaq_laneq_f32(c30, b0, a0, 3); c31 = vfmaq_laneq_f32(c31, b1, a0, 3); c32 = vfmaq_laneq_f32(c32, b2, a0, 3);
    c40 = vfmaq_laneq_f32(c40, b0, a1, 0); c41 = vfmaq_laneq_f32(c41, b1, a1, 0); c42 = vfmaq_laneq_f32(c42, b2, a1, 0);
    c50 = vfmaq_laneq_f32(c50, b0, a1, 1); c51 = vfmaq_laneq_f32(c51, b1, a1, 1); c52 = vfmaq_laneq_f32(c52, b2, a1, 1);
    c60 = vfmaq_laneq_f32(c60, b0, a1, 2); c61 = vfmaq_laneq_f32(c61, b1, a1, 2); c62 = vfmaq_laneq_f32(c62, b2, a1, 2);
    c70 = vfmaq_laneq_f32(c70, b0, a1, 3); c71 = vfmaq_laneq_f32(c71, b1, a1, 3); c72 = vfmaq_laneq_f32(c72, b2, a1, 3);
  }
  alignas(16) float tile[MR][NR];
  vst1q_f32(tile[0], c00); vst1q_f32(tile[0] + 4, c01); vst1q_f32(tile[0] + 8, c02);
  vst1q_f32(tile[1], c10); vst1q_f32(tile[1] + 4, c11); vst1q_f32(tile[1] + 8, c12);
  vst1q_f32(tile[2], c20); vst1q_f32(tile[2] + 4, c21); vst1q_f32(tile[2] + 8, c22);
  vst1q_f32(tile[3], c30); vst1q_f32(tile[3] + 4, c31); vst1q_f32(tile[3] + 8, c32);
  vst1q_f32(tile[4], c40); vst1q_f32(tile[4] + 4, c41); vst1q_f32(tile[4] + 8, c42);
  vst1q_f32(tile[5], c50); vst1q_f32(tile[5] + 4, c51); vst1q_f32(tile[5] + 8, c52);
  vst1q_f32(tile[6], c60); vst1q_f32(tile[6] + 4, c61); vst1q_f32(tile[6] + 8, c62);
  vst1q_f32(tile[7], c70); vst1q_f32(tile[7] + 4, c71); vst1q_f32(tile[7] + 8, c72);
  const float32x4_t zero = vdupq_n_f32(0.0f);
  for (int r = 0; r < mr; ++r) {
    float* crow = C + r * ldc;
    if (nr == NR) {
      float32x4_t v[3] = {vld1q_f32(tile[r]), vld1q_f32(tile[r] + 4), vld1q_f32(tile[r] + 8)};
      for (int q = 0; q < 3; ++q) {
        if (accumulate) v[q] = vaddq_f32(vld1q_f32(crow + 4 * q), v[q]);
        else if (row_bias) v[q] = vaddq_f32(vdupq_n_f32(row_bias[r]), v[q]);  // bias first, as the reference
        else if (col_bias) v[q] = vaddq_f32(vld1q_f32(col_bias + 4 * q), v[q]);
        if (last && relu) v[q] = vbslq_f32(vcgtq_f32(zero, v[q]), zero, v[q]);  // v < 0 ? 0 : v, NaN kept
        vst1q_f32(crow + 4 * q, v[q]);
      }
    } else {
      gemm_common::store_row_scalar(tile[r], crow, nr, accumulate, last, row_bias ? row_bias + r : nullptr, col_bias,
                                    relu);
    }
  }
}

}  // namespace

void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work) {
  gemm_common::gemm_blocked<MR, NR, KC, NC>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work, micro_kernel);
}

}  // namespace gemm_neon
}  // namespace medconv
