// Packed single-precision GEMM for AVX2+FMA: C[M, N] (+)= A[M, K] * B[K, N], 6x16 register tiles.
// A is packed once into MR-row panels; B is packed per (KC x NC) block by a caller-given packer,
// which lets convolution pack im2col columns straight from the input (implicit GEMM).
#pragma once
#include <cstdint>

#include "gemm_common.h"

namespace medconv {
namespace gemm {

constexpr int MR = 6;
constexpr int NR = 16;
constexpr int64_t KC = 256;
constexpr int64_t NC = 192;  // multiple of NR

// Ap: [ceil(M / MR)][K][MR], rows past M zero. A(i, k) = a[i * lda + k * ska].
int64_t packed_a_size(int64_t M, int64_t K);
void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap);

using PackB = gemm_common::PackB;  // fills a (KC x NC) block of B as [ceil(nc / NR)][kc][NR]

using Epilogue = gemm_common::Epilogue;

// C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1); single-threaded (callers split N).
// work must hold KC * NC floats.
void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work);

// The GEMM as a type, for the drivers of conv_gemm.h.
using Gemm = gemm_common::GemmApi<float, MR, NR, KC, NC, packed_a_size, pack_a, gemm_columns>;

}  // namespace gemm
}  // namespace medconv
