// The ISA-independent half of the packed SGEMM: the layouts of packed A and B, the packer of
// linear's B, and the cache-blocked loop that calls an ISA's MR x NR micro-kernel. Each
// gemm_<isa>.cpp instantiates these with its tile; plain loops, so the per-file ISA flags
// vectorise them.
//
// Everything with code here has internal linkage (anonymous namespace): a copy compiled with
// -mavx512f must never be merged at link time with a copy that a plainer CPU runs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

namespace medconv {
namespace gemm_common {

// The GEMMs are templates over the scalar T: float for the SGEMMs, double for AVX2's DGEMM.
template <class T>
struct EpilogueOf {
  const T* row_bias = nullptr;  // [M], added to each row
  const T* col_bias = nullptr;  // [N], added to each column
  bool relu = false;
};
using Epilogue = EpilogueOf<float>;

// Fills Bp with the block B[pc : pc + kc, jc : jc + nc] as [ceil(nc / NR)][kc][NR], columns past nc zero.
template <class T>
using PackBOf = std::function<void(int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp)>;
using PackB = PackBOf<float>;

template <class T>
using GemmColumnsOf = void (*)(int64_t M, int64_t K, const T* Ap, const PackBOf<T>& pack_b, int64_t j0, int64_t j1,
                               T* C, int64_t ldc, const EpilogueOf<T>& ep, T* work);

// One ISA's packed GEMM as a type, for the ISA-independent drivers of conv_gemm.h: its scalar, tile
// and blocking sizes and its entry points (declared in gemm_<isa>.h, defined in gemm_<isa>.cpp).
template <class T, int MR_, int NR_, int64_t KC_, int64_t NC_, int64_t (*PackedASize)(int64_t, int64_t),
          void (*PackA)(const T*, int64_t, int64_t, int64_t, int64_t, T*), GemmColumnsOf<T> Columns>
struct GemmApi {
  using Scalar = T;
  static constexpr int MR = MR_, NR = NR_;
  static constexpr int64_t KC = KC_, NC = NC_;
  static int64_t packed_a_size(int64_t M, int64_t K) { return PackedASize(M, K); }
  static void pack_a(const T* a, int64_t lda, int64_t ska, int64_t M, int64_t K, T* Ap) { PackA(a, lda, ska, M, K, Ap); }
  static void gemm_columns(int64_t M, int64_t K, const T* Ap, const PackBOf<T>& pack_b, int64_t j0, int64_t j1, T* C,
                           int64_t ldc, const EpilogueOf<T>& ep, T* work) {
    Columns(M, K, Ap, pack_b, j0, j1, C, ldc, ep, work);
  }
};

namespace {

// Ap: [ceil(M / MR)][K][MR], rows past M zero. A(i, k) = a[i * lda + k * ska].
template <int MR>
int64_t packed_a_size(int64_t M, int64_t K) {
  return (M + MR - 1) / MR * MR * K;
}

template <int MR, class T>
void pack_a(const T* a, int64_t lda, int64_t ska, int64_t M, int64_t K, T* Ap) {
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    T* dst = Ap + i0 * K;
    const int64_t rows = std::min<int64_t>(MR, M - i0);
    for (int64_t k = 0; k < K; ++k)
      for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? a[(i0 + r) * lda + k * ska] : T(0);
  }
}

// crow[j] = (accumulate ? crow[j] : row_bias or col_bias[j] or 0) + sum[j], relu'd when last, for
// j < nr: a micro-kernel's epilogue for a tile row narrower than its vectors (bias first, as the
// reference: bias + sum; NaN kept by the ReLU).
template <class T>
inline void store_row_scalar(const T* sum, T* crow, int nr, bool accumulate, bool last, const T* row_bias,
                             const T* col_bias, bool relu) {
  for (int j = 0; j < nr; ++j) {
    T v = sum[j];
    if (accumulate) v = crow[j] + v;
    else if (row_bias) v = *row_bias + v;
    else if (col_bias) v = col_bias[j] + v;
    if (last && relu) v = v > T(0) ? v : (v != v ? v : T(0));
    crow[j] = v;
  }
}

// Bp[panel][k][NR] = w[j, pc + k] for j in [jc, jc + nc), columns past nc zero: B = w^T.
// w: [N, K]
template <int NR, class T>
void pack_transposed_columns(const T* w, int64_t K, int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
  for (int64_t p0 = 0; p0 < nc; p0 += NR) {
    T* dst = Bp + (p0 / NR) * kc * NR;
    const int64_t cols = std::min<int64_t>(NR, nc - p0);
    for (int64_t t = 0; t < NR; ++t) {
      if (t < cols) {
        const T* src = w + (jc + p0 + t) * K + pc;
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + t] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + t] = T(0);
      }
    }
  }
}

// Bp[panel][k][NR] = b[(pc + k) * ldb + jc + j] for j in [0, nc), columns past nc zero: B's rows
// are contiguous.
template <int NR, class T>
void pack_rows(const T* b, int64_t ldb, int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
  for (int64_t p0 = 0; p0 < nc; p0 += NR) {
    T* dst = Bp + (p0 / NR) * kc * NR;
    const int64_t cols = std::min<int64_t>(NR, nc - p0);
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = b + (pc + k) * ldb + jc + p0;
      if (cols == NR) {
        for (int t = 0; t < NR; ++t) dst[k * NR + t] = src[t];
      } else {
        for (int t = 0; t < NR; ++t) dst[k * NR + t] = t < cols ? src[t] : T(0);
      }
    }
  }
}

// The depth of gemm_blocked's K passes: K in passes of equal depth (a multiple of 8, at most KC), so
// that no short last pass pays its micro-kernels' C loads and stores for little work (S5, K = 576:
// 3 x 192 instead of 256 + 256 + 64, 2-10% faster).
template <int64_t KC>
int64_t k_step(int64_t K) {
  const int64_t passes = (K + KC - 1) / KC;
  return std::min(KC, ((K + passes - 1) / passes + 7) / 8 * 8);
}

// C[i, j] = epilogue(sum_k A(i, k) B(k, j)) for j in [j0, j1), single-threaded.
// For each NC-wide, KC-deep block of B: pack it once (pack_b(pc, kc, jc, nc, work)), then for each
// NR-wide micro-panel (kept in L1) sweep A's MR-row panels (streamed from L2). The sum over k runs
// in order; slices after the first are added to C (micro's `accumulate`), the epilogue's bias on
// the first and relu on the last.
// micro(kc, Ap, Bp, C, ldc, mr, nr, accumulate, last, row_bias, col_bias, relu)
// Ap: packed by pack_a<MR>, C: [M, ldc], work: KC * NC floats
template <int MR, int NR, int64_t KC, int64_t NC, class T, class PackB, class Micro>
void gemm_blocked(int64_t M, int64_t K, const T* Ap, const PackB& pack_b, int64_t j0, int64_t j1, T* C, int64_t ldc,
                  const EpilogueOf<T>& ep, T* work, Micro micro) {
  static_assert(NC % NR == 0, "NC must be a multiple of NR");
  for (int64_t jc = j0; jc < j1; jc += NC) {
    const int64_t nc = std::min(NC, j1 - jc);
    const int64_t kstep = k_step<KC>(K);
    for (int64_t pc = 0; pc < K; pc += kstep) {
      const int64_t kc = std::min(kstep, K - pc);
      pack_b(pc, kc, jc, nc, work);
      const bool first = pc == 0, last = pc + kc >= K;
      for (int64_t jr = 0; jr < nc; jr += NR) {
        const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
        const T* Bp = work + (jr / NR) * kc * NR;
        for (int64_t ir = 0; ir < M; ir += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, M - ir));
          micro(kc, Ap + ir * K + pc * MR, Bp, C + ir * ldc + jc + jr, ldc, mr, nr, !first, last,
                ep.row_bias ? ep.row_bias + ir : nullptr, ep.col_bias ? ep.col_bias + jc + jr : nullptr, ep.relu);
        }
      }
    }
  }
}

}  // namespace
}  // namespace gemm_common
}  // namespace medconv
