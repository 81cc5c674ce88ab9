// Dense-layer gradients, the portable reference: row-by-row axpy loops (a plain GEMM), one
// output row per task.
#include <algorithm>

#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {

// gy: [M, N], w: [N, K], gx: [M, K]; gx[m, :] = sum_n gy[m, n] * w[n, :]
template <class T>
void linear_backward_input_ref(const T* gy, const T* w, T* gx, int64_t M, int64_t N, int64_t K) {
  parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, N * K)), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      T* out = gx + m * K;
      std::fill(out, out + K, T(0));
      for (int64_t n = 0; n < N; ++n) {
        const T a = gy[m * N + n];
        const T* wr = w + n * K;
        for (int64_t k = 0; k < K; ++k) out[k] += a * wr[k];
      }
    }
  });
}

// gy: [M, N], x: [M, K], gw: [N, K], gb: [N] or null
// gw[n, :] = sum_m gy[m, n] * x[m, :]; gb[n] = sum_m gy[m, n]
template <class T>
void linear_backward_weight_ref(const T* gy, const T* x, T* gw, T* gb, int64_t M, int64_t N, int64_t K) {
  parallel_for(N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, M * K)), [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      T* out = gw + n * K;
      std::fill(out, out + K, T(0));
      T bsum = T(0);
      for (int64_t m = 0; m < M; ++m) {
        const T a = gy[m * N + n];
        const T* xr = x + m * K;
        bsum += a;
        for (int64_t k = 0; k < K; ++k) out[k] += a * xr[k];
      }
      if (gb) gb[n] = bsum;
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                                  \
  template void linear_backward_input_ref<T>(const T*, const T*, T*, int64_t, int64_t, int64_t); \
  template void linear_backward_weight_ref<T>(const T*, const T*, T*, T*, int64_t, int64_t, int64_t);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
