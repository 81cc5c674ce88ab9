// Packed single-precision GEMM for AArch64 NEON: C[M, N] (+)= A[M, K] * B[K, N], 8x12 register tiles.
// The packing contract of gemm_avx2.h: A packed once into MR-row panels, B packed per (KC x NC)
// block by a caller-given packer (implicit-GEMM convolution packs im2col columns straight from x).
//
// Why 8x12: 24 float32x4 accumulators, two A vectors and three B vectors fill 29 of the 32 q
// registers; per k, 5 vector loads feed 24 FMAs (vfmaq_laneq_f32 takes A's row from a lane, so no
// broadcasts), and MR = 8 divides the usual channel counts. KC = 256 keeps a B micro-panel
// (256 x 12 floats, 12 KiB) in L1.
#pragma once
#include <cstdint>
#include <functional>

#include "gemm_common.h"

namespace medconv {
namespace gemm_neon {

constexpr int MR = 8;
constexpr int NR = 12;
constexpr int64_t KC = 256;
constexpr int64_t NC = 192;  // multiple of NR

// Ap: [ceil(M / MR)][K][MR], rows past M zero. A(i, k) = a[i * lda + k * ska].
int64_t packed_a_size(int64_t M, int64_t K);
void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap);

// Fills Bp with the block B[pc : pc + kc, jc : jc + nc] as [ceil(nc / NR)][kc][NR], columns past nc zero.
using PackB = std::function<void(int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp)>;
using Epilogue = gemm_common::Epilogue;

// C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1); single-threaded (callers split N).
// work must hold KC * NC floats, 16-byte aligned.
void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work);

// The GEMM as a type, for the templates of conv_gemm.h.
struct Gemm {
  static constexpr int MR = gemm_neon::MR, NR = gemm_neon::NR;
  static constexpr int64_t KC = gemm_neon::KC, NC = gemm_neon::NC;
  static int64_t packed_a_size(int64_t M, int64_t K) { return gemm_neon::packed_a_size(M, K); }
  static void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
    gemm_neon::pack_a(a, lda, ska, M, K, Ap);
  }
  static void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1,
                           float* C, int64_t ldc, const Epilogue& ep, float* work) {
    gemm_neon::gemm_columns(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work);
  }
};

}  // namespace gemm_neon
}  // namespace medconv
