// Dense layer y = x w^T + bias on the packed SGEMM, AVX2+FMA, float32.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "aligned.h"
#include "avx2_kernels.h"
#include "gemm_avx2.h"
#include "gemm_common.h"
#include "parallel.h"

namespace medconv {
namespace {

using gemm::NR;

// x: [M, K], w: [N, K], bias: [N] or null, y: [M, N]
void linear_avx2(const float* x, const float* w, const float* bias, float* y, int64_t M, int64_t N, int64_t K) {
  constexpr int64_t MB = 16 * gemm::MR;  // rows per task
  std::vector<float> Ap(static_cast<size_t>(gemm::packed_a_size(M, K)));
  gemm::pack_a(x, K, 1, M, K, Ap.data());
  const int64_t row_blocks = (M + MB - 1) / MB, col_tiles = (N + gemm::NC - 1) / gemm::NC;
  parallel_for(row_blocks * col_tiles, 1, [&](int64_t begin, int64_t end) {
    float* work = thread_scratch<float>(gemm::KC * gemm::NC);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t rb = t / col_tiles, ct = t % col_tiles;
      const int64_t i0 = rb * MB, rows = std::min(MB, M - i0);
      const int64_t j0 = ct * gemm::NC, j1 = std::min(N, j0 + gemm::NC);
      gemm::Epilogue ep;
      ep.col_bias = bias;
      gemm::gemm_columns(rows, K, Ap.data() + i0 * K,
                         [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, float* Bp) {
                           gemm_common::pack_transposed_columns<NR>(w, K, pc, kc, jc, nc, Bp);
                         },
                         j0, j1, y + i0 * N, N, ep, work);
    }
  });
}

}  // namespace

void add_linear_avx2(KernelTable& t) { t.f32.linear = linear_avx2; }

}  // namespace medconv
