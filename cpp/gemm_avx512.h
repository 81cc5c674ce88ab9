// Packed single-precision GEMM for AVX-512F: C[M, N] (+)= A[M, K] * B[K, N], 8x32 register tiles.
// The packing contract of gemm_avx2.h: A packed once into MR-row panels, B packed per (KC x NC)
// block by a caller-given packer (implicit-GEMM convolution packs im2col columns straight from x).
//
// Why 8x32: 16 zmm accumulators, two B vectors and a broadcast A operand per k give 16 FMAs per
// 2 vector + 8 broadcast loads, so the tile is FMA-bound on two 512-bit FMA ports (and on Zen 4's
// double-pumped units) while leaving half the registers free; and MR = 8 divides the channel
// counts CNNs use (16, 32, 64, ...), where 14 or 12 rows would compute 9-43% padding rows (16
// channels: 2 x 14 = 28 rows). KC = 128 keeps a B micro-panel (128 x 32 floats, 16 KiB) in a
// 32 KiB L1 beside the streaming A panel.
#pragma once
#include <cstdint>

#include "gemm_common.h"

namespace medconv {
namespace gemm_avx512 {

constexpr int MR = 8;
constexpr int NR = 32;
constexpr int64_t KC = 128;
constexpr int64_t NC = 256;  // multiple of NR

// Ap: [ceil(M / MR)][K][MR], rows past M zero. A(i, k) = a[i * lda + k * ska].
int64_t packed_a_size(int64_t M, int64_t K);
void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap);

using PackB = gemm_common::PackB;  // fills a (KC x NC) block of B as [ceil(nc / NR)][kc][NR]
using Epilogue = gemm_common::Epilogue;

// C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1); single-threaded (callers split N).
// work must hold KC * NC floats, 64-byte aligned.
void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work);

// The GEMM as a type, for the drivers of conv_gemm.h.
using Gemm = gemm_common::GemmApi<float, MR, NR, KC, NC, packed_a_size, pack_a, gemm_columns>;

}  // namespace gemm_avx512
}  // namespace medconv
