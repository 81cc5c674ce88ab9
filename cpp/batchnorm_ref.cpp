// Batch normalisation, the portable reference: statistics, normalisation and gradients, one
// channel per task (sums in double, in a fixed order).
#include <algorithm>
#include <cmath>

#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {

// x: [N, C, S]; mean[c] = sum x / M, var[c] = sum (x - mean)^2 / M (biased), M = N * S
template <class T>
void batch_norm_stats_ref(const T* x, int64_t N, int64_t C, int64_t S, double eps, T* mean, T* var, T* invstd) {
  const double M = static_cast<double>(N * S);
  parallel_for(C, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, N * S)), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double sum = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) sum += p[i];
      }
      const double mu = M > 0 ? sum / M : 0.0;
      double sq = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) {
          const double d = static_cast<double>(p[i]) - mu;
          sq += d * d;
        }
      }
      const double v = M > 0 ? sq / M : 0.0;
      mean[c] = static_cast<T>(mu);
      var[c] = static_cast<T>(v);
      invstd[c] = static_cast<T>(1.0 / std::sqrt(v + eps));
    }
  });
}

// y[n, c, i] = (x[n, c, i] - mean[c]) * invstd[c] * gamma[c] + beta[c]
template <class T>
void batch_norm_apply_ref(const T* x, int64_t N, int64_t C, int64_t S, const T* mean, const T* invstd, const T* gamma,
                          const T* beta, T* y) {
  parallel_for(N * C, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, S)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t c = r % C;
      const T scale = invstd[c] * (gamma ? gamma[c] : T(1));
      const T shift = (beta ? beta[c] : T(0)) - mean[c] * scale;
      const T* p = x + r * S;
      T* q = y + r * S;
      for (int64_t i = 0; i < S; ++i) q[i] = p[i] * scale + shift;
    }
  });
}

BatchNormGrad batch_norm_grad(double sum_g, double sum_gx, double gamma, double invstd, double M, bool training) {
  const bool batch = training && M > 0;
  return {gamma * invstd, batch ? sum_g / M : 0.0, batch ? sum_gx * invstd * invstd / M : 0.0};  // proj: xhat's / invstd
}

// See nn_kernels.h. One channel per task: two sums over (n, i), then gx for that channel.
template <class T>
void batch_norm_backward_ref(const T* x, const T* gy, int64_t N, int64_t C, int64_t S, const T* mean, const T* invstd,
                             const T* gamma, bool training, T* gx, T* ggamma, T* gbeta) {
  const double M = static_cast<double>(N * S);
  parallel_for(C, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, N * S)), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const double mu = mean[c], is = invstd[c];
      double sum_g = 0, sum_gx = 0;
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* g = gy + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) {
          sum_g += g[i];
          sum_gx += static_cast<double>(g[i]) * (static_cast<double>(p[i]) - mu);
        }
      }
      if (gbeta) gbeta[c] = static_cast<T>(sum_g);
      if (ggamma) ggamma[c] = static_cast<T>(sum_gx * is);
      if (!gx) continue;
      const auto [k, mean_g, proj] =
          batch_norm_grad(sum_g, sum_gx, gamma ? static_cast<double>(gamma[c]) : 1.0, is, M, training);
      for (int64_t n = 0; n < N; ++n) {
        const T* p = x + (n * C + c) * S;
        const T* g = gy + (n * C + c) * S;
        T* q = gx + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i)
          q[i] = static_cast<T>(k * (static_cast<double>(g[i]) - mean_g - (static_cast<double>(p[i]) - mu) * proj));
      }
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                                             \
  template void batch_norm_stats_ref<T>(const T*, int64_t, int64_t, int64_t, double, T*, T*, T*);          \
  template void batch_norm_apply_ref<T>(const T*, int64_t, int64_t, int64_t, const T*, const T*, const T*, \
                                        const T*, T*);                                                     \
  template void batch_norm_backward_ref<T>(const T*, const T*, int64_t, int64_t, int64_t, const T*,        \
                                           const T*, const T*, bool, T*, T*, T*);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
