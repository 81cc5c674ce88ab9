// Softmax / log-softmax over one dim and maxout, the portable reference.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.h"
#include "parallel.h"

namespace medconv {

// x, y: [outer, dim, inner]; y[o, :, i] = softmax(x[o, :, i]) (or its log), max subtracted first.
template <class T>
void softmax_ref(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  constexpr int64_t block = 256;  // inner columns handled together, contiguous in memory
  const int64_t blocks_per_outer = (inner + block - 1) / block;
  parallel_for(outer * blocks_per_outer, 1, [&](int64_t begin, int64_t end) {
    T mx[block], sum[block];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / blocks_per_outer, i0 = (t % blocks_per_outer) * block;
      const int64_t nb = std::min(block, inner - i0);
      const T* xs = x + o * dim * inner + i0;
      T* ys = y + o * dim * inner + i0;
      for (int64_t i = 0; i < nb; ++i) mx[i] = -std::numeric_limits<T>::infinity(), sum[i] = 0;
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < nb; ++i) {
          const T v = xs[d * inner + i];
          mx[i] = (v > mx[i] || v != v) ? v : mx[i];
        }
      for (int64_t i = 0; i < nb; ++i)  // an all -inf column: keep exp(x - max) finite (gives nan like torch)
        if (std::isinf(mx[i]) && mx[i] < 0) mx[i] = 0;
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < nb; ++i) {
          const T e = std::exp(xs[d * inner + i] - mx[i]);
          sum[i] += e;
          if (!log) ys[d * inner + i] = e;
        }
      if (log) {  // (x - max) - log(sum): max + log(sum) would lose log(sum) for a huge max
        for (int64_t i = 0; i < nb; ++i) sum[i] = std::log(sum[i]);
        for (int64_t d = 0; d < dim; ++d)
          for (int64_t i = 0; i < nb; ++i) ys[d * inner + i] = (xs[d * inner + i] - mx[i]) - sum[i];
      } else {
        for (int64_t i = 0; i < nb; ++i) sum[i] = T(1) / sum[i];
        for (int64_t d = 0; d < dim; ++d)
          for (int64_t i = 0; i < nb; ++i) ys[d * inner + i] *= sum[i];
      }
    }
  });
}

// x: [outer, groups, pieces, inner], y: [outer, groups, inner]; y = max over pieces (NaN wins)
template <class T>
void maxout_ref(const T* x, T* y, int64_t outer, int64_t groups, int64_t pieces, int64_t inner) {
  parallel_for(outer * groups, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, pieces * inner)),
               [&](int64_t begin, int64_t end) {
    for (int64_t og = begin; og < end; ++og) {
      const T* xs = x + og * pieces * inner;
      T* ys = y + og * inner;
      for (int64_t i = 0; i < inner; ++i) ys[i] = xs[i];
      for (int64_t p = 1; p < pieces; ++p)
        for (int64_t i = 0; i < inner; ++i) {
          const T v = xs[p * inner + i];
          ys[i] = (v > ys[i] || v != v) ? v : ys[i];
        }
    }
  });
}

template void softmax_ref<float>(const float*, float*, int64_t, int64_t, int64_t, bool);
template void softmax_ref<double>(const double*, double*, int64_t, int64_t, int64_t, bool);
template void maxout_ref<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t);
template void maxout_ref<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace medconv
