// Packed double-precision GEMM for AVX2+FMA, the float64 twin of gemm_avx2.h: C[M, N] (+)= A[M, K] *
// B[K, N] on 6x8 register tiles (12 accumulators of 4 doubles), with gemm_common.h's packing and
// blocking, so that conv_gemm.h's implicit-GEMM conv and linear run on it for float64 inputs.
#pragma once
#include <cstdint>

#include "gemm_common.h"

namespace medconv {
namespace dgemm {

constexpr int MR = 6;
constexpr int NR = 8;
constexpr int64_t KC = 256;
constexpr int64_t NC = 96;  // multiple of NR: a KC x NC block of B is 192 KB, in L2

// Ap: [ceil(M / MR)][K][MR], rows past M zero. A(i, k) = a[i * lda + k * ska].
int64_t packed_a_size(int64_t M, int64_t K);
void pack_a(const double* a, int64_t lda, int64_t ska, int64_t M, int64_t K, double* Ap);

// C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1); single-threaded (callers split N).
// work must hold KC * NC doubles.
void gemm_columns(int64_t M, int64_t K, const double* Ap, const gemm_common::PackBOf<double>& pack_b, int64_t j0,
                  int64_t j1, double* C, int64_t ldc, const gemm_common::EpilogueOf<double>& ep, double* work);

using Gemm = gemm_common::GemmApi<double, MR, NR, KC, NC, packed_a_size, pack_a, gemm_columns>;

}  // namespace dgemm
}  // namespace medconv
