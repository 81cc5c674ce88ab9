// Packed SGEMM micro-kernel and driver, AVX-512F (see gemm_avx512.h).
#include "gemm_avx512.h"

#include <immintrin.h>

#include "gemm_common.h"
#include "packed_gemm.h"
#include "vec_avx512.h"

namespace medconv {
namespace gemm_avx512 {

int64_t packed_a_size(int64_t M, int64_t K) { return gemm_common::packed_a_size<MR>(M, K); }

void pack_a(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
  gemm_common::pack_a<MR>(a, lda, ska, M, K, Ap);
}

namespace {

using avx512::first_lanes;

// acc[r][0..NR) = sum_k Ap[k][r] * Bp[k][0..NR) (k in order), NR = 16 * NV; then for r < mr, j < nr:
// C[r][j] = (accumulate ? C[r][j] : row_bias[r] or col_bias[j] or 0) + acc[r][j], relu'd when last.
// Ap: [kc][MR], Bp: [kc][NR] (64-byte aligned), C: rows of stride ldc
template <int MR, int NV>
void micro_kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int mr, int nr,
                  bool accumulate, bool last, const float* row_bias, const float* col_bias, bool relu) {
  constexpr int NR = 16 * NV;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int r = 0; r < mr; ++r) _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(Bp + (k + 8) * NR + 16 * v), _MM_HINT_T0);
    for (int q = 0; q < MR; q += 16) _mm_prefetch(reinterpret_cast<const char*>(Ap + (k + 16) * MR + q), _MM_HINT_T0);
    __m512 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(Bp + k * NR + 16 * v);
    const float* a = Ap + k * MR;
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {  // a broadcast operand: vfmadd231ps zmm, zmm, [a + 4r]{1to16}
      const __m512 av = _mm512_set1_ps(a[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, b[v], acc[r][v]);
    }
  }
  // Columns past nr are masked off: masked loads do not touch (or fault on) those lanes.
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) m[v] = first_lanes(nr - 16 * v);
  const __mmask16 all = static_cast<__mmask16>(0xFFFF);
  const __m512 zero = _mm512_setzero_ps();
  __m512 cb[NV];
  for (int v = 0; v < NV; ++v)
    cb[v] = !accumulate && !row_bias && col_bias ? _mm512_maskz_loadu_ps(m[v], col_bias + 16 * v) : zero;
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
    float* crow = C + r * ldc;
    for (int v = 0; v < NV; ++v) {
      __m512 o = acc[r][v];
      if (accumulate) o = _mm512_add_ps(_mm512_maskz_loadu_ps(m[v], crow + 16 * v), o);
      else if (row_bias) o = _mm512_add_ps(_mm512_set1_ps(row_bias[r]), o);  // bias first, as the reference
      else if (col_bias) o = _mm512_add_ps(cb[v], o);
      // max(0, v) keeping NaN: max_ps returns its second operand on NaN (the all-lanes masked
      // form: GCC 12 warns about the unmasked one's undefined source)
      if (last && relu) o = _mm512_mask_max_ps(o, all, zero, o);
      _mm512_mask_storeu_ps(crow + 16 * v, m[v], o);
    }
  }
}

}  // namespace

void gemm_columns(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                  int64_t ldc, const Epilogue& ep, float* work) {
  gemm_common::gemm_blocked<MR, NR, KC, NC>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work, micro_kernel<MR, NR / 16>);
}

namespace {

// The 16 x 16 tile, for B packed in 16-column panels (Winograd's): 16 zmm accumulators, one B vector
// and 16 broadcast A operands per k. MR = 16 divides the channel counts CNNs use.
constexpr int kMR16 = 16;
constexpr int64_t kKC16 = 256, kNC16 = 192;
static_assert(MR <= kPackedMaxRows && NR <= kPackedMaxColumns && KC <= kPackedMaxKc && kKC16 <= kPackedMaxKc, "fits");
static_assert(kNC16 >= kPanel16MinNc, "panel16_gemm's column blocks");

int64_t packed_a_size16(int64_t M, int64_t K) { return gemm_common::packed_a_size<kMR16>(M, K); }

void pack_a16(const float* a, int64_t lda, int64_t ska, int64_t M, int64_t K, float* Ap) {
  gemm_common::pack_a<kMR16>(a, lda, ska, M, K, Ap);
}

void gemm_columns16(int64_t M, int64_t K, const float* Ap, const PackB& pack_b, int64_t j0, int64_t j1, float* C,
                    int64_t ldc, const Epilogue& ep, float* work) {
  gemm_common::gemm_blocked<kMR16, 16, kKC16, kNC16>(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work,
                                                                micro_kernel<kMR16, 1>);
}

}  // namespace
}  // namespace gemm_avx512

const PackedGemm& packed_gemm_avx512() {
  using namespace gemm_avx512;
  static const PackedGemm g{MR, NR, KC, NC, packed_a_size, pack_a, gemm_columns};
  return g;
}

const PackedGemm& packed_gemm_avx512_16x16() {
  using namespace gemm_avx512;
  static const PackedGemm g{kMR16, 16, kKC16, kNC16, packed_a_size16, pack_a16, gemm_columns16};
  return g;
}

}  // namespace medconv
