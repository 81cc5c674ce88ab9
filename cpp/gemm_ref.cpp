// Dense layer y = x w^T + bias, the portable reference.
#include "kernels.h"
#include "parallel.h"

namespace medconv {

// x: [M, K], w: [N, K], bias: [N] or null, y: [M, N]
template <class T>
void linear_ref(const T* x, const T* w, const T* bias, T* y, int64_t M, int64_t N, int64_t K) {
  parallel_for(M * N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K)), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t m = t / N, n = t % N;
      const T* xr = x + m * K;
      const T* wr = w + n * K;
      T acc = bias ? bias[n] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += xr[k] * wr[k];
      y[t] = acc;
    }
  });
}

template void linear_ref<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void linear_ref<double>(const double*, const double*, const double*, double*, int64_t, int64_t, int64_t);

}  // namespace medconv
