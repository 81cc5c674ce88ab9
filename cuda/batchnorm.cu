// Batch normalisation: statistics, normalisation and gradients, as cpp/batchnorm_ref.cpp.
// x, gy: [N, C, S]. Per-channel sums are taken in double in two deterministic stages: `parts`
// blocks per channel each reduce a fixed contiguous slice of the channel's N*S values (block tree
// order) into ws[c, part], then one thread per channel adds its parts in order.
#include "common.cuh"

// mode 0: ws[c, part] = sum x
// mode 1: ws[c, part] = sum (x - center_d[c])^2
// mode 2: ws[c, part] = sum gy, ws2[c, part] = sum gy * (x - center_t[c])
template <class T>
__device__ void bn_reduce(const T* __restrict__ x, const T* __restrict__ gy, const double* __restrict__ center_d,
                          const T* __restrict__ center_t, i64 N, i64 C, i64 S, i64 parts, int mode,
                          double* __restrict__ ws, double* __restrict__ ws2) {
  __shared__ double buf[MC_THREADS];
  const i64 M = N * S;
  const i64 chunk = (M + parts - 1) / parts;
  for (i64 b = blockIdx.x; b < C * parts; b += gridDim.x) {
    const i64 c = b / parts, part = b - c * parts;
    const i64 begin = part * chunk, end = mc_min(M, begin + chunk);
    const double mu = mode == 1 ? center_d[c] : mode == 2 ? static_cast<double>(center_t[c]) : 0.0;
    double acc = 0.0, acc2 = 0.0;
    i64 t = begin + threadIdx.x;
    i64 n = t / S, i = t - n * S;  // t = n * S + i, advanced without dividing
    for (; t < end; t += MC_THREADS) {
      const i64 k = (n * C + c) * S + i;
      if (mode == 0) {
        acc += static_cast<double>(x[k]);
      } else if (mode == 1) {
        const double dv = static_cast<double>(x[k]) - mu;
        acc += dv * dv;
      } else {
        const double g = static_cast<double>(gy[k]);
        acc += g;
        acc2 += g * (static_cast<double>(x[k]) - mu);
      }
      i += MC_THREADS;
      if (i >= S) n += i / S, i %= S;
    }
    acc = mc_block_sum(acc, buf);
    if (mode == 2) acc2 = mc_block_sum(acc2, buf);
    if (threadIdx.x == 0) {
      ws[b] = acc;
      if (mode == 2) ws2[b] = acc2;
    }
  }
}

// mean_d[c] = sum of ws[c, :] / M
__device__ void finalize_mean(const double* __restrict__ ws, double* __restrict__ mean_d, i64 C, i64 parts, i64 M) {
  MC_FOR(c, C) {
    double s = 0.0;
    for (i64 p = 0; p < parts; ++p) s += ws[c * parts + p];
    mean_d[c] = M > 0 ? s / static_cast<double>(M) : 0.0;
  }
}

// var = sum of ws[c, :] / M (biased); mean, var, invstd = 1 / sqrt(var + eps) in T
template <class T>
__device__ void bn_finalize_var(const double* __restrict__ ws, const double* __restrict__ mean_d, i64 C, i64 parts,
                                i64 M, double eps, T* __restrict__ mean, T* __restrict__ var, T* __restrict__ invstd) {
  MC_FOR(c, C) {
    double s = 0.0;
    for (i64 p = 0; p < parts; ++p) s += ws[c * parts + p];
    const double v = M > 0 ? s / static_cast<double>(M) : 0.0;
    mean[c] = static_cast<T>(mean_d[c]);
    var[c] = static_cast<T>(v);
    invstd[c] = static_cast<T>(1.0 / sqrt(v + eps));
  }
}

// y[n, c, i] = (x[n, c, i] - mean[c]) * invstd[c] * gamma[c] + beta[c]; gamma, beta may be null
template <class T>
__device__ void bn_apply(const T* __restrict__ x, i64 N, i64 C, i64 S, const T* __restrict__ mean,
                         const T* __restrict__ invstd, const T* __restrict__ gamma, const T* __restrict__ beta,
                         T* __restrict__ y) {
  MC_FOR(e, N * C * S) {
    const i64 c = (e / S) % C;
    const T scale = invstd[c] * (gamma ? gamma[c] : T(1));
    const T shift = (beta ? beta[c] : T(0)) - mean[c] * scale;
    y[e] = x[e] * scale + shift;
  }
}

// From the sums sum_g = ws[c, :], sum_gx = ws2[c, :]: gbeta = sum_g, ggamma = sum_gx * invstd
// (each may be null) and coef[c] = (k, mean_g, proj) for bn_backward_input:
// training: gx = k * (gy - mean_g - (x - mean) * proj), k = gamma * invstd, mean_g = sum_g / M,
// proj = sum_gx * invstd^2 / M; inference: mean_g = proj = 0.
template <class T>
__device__ void bn_backward_finalize(const double* __restrict__ ws, const double* __restrict__ ws2, i64 C, i64 parts,
                                     i64 M, const T* __restrict__ invstd, const T* __restrict__ gamma, int training,
                                     T* __restrict__ ggamma, T* __restrict__ gbeta, double* __restrict__ coef) {
  MC_FOR(c, C) {
    double sum_g = 0.0, sum_gx = 0.0;
    for (i64 p = 0; p < parts; ++p) sum_g += ws[c * parts + p], sum_gx += ws2[c * parts + p];
    const double is = static_cast<double>(invstd[c]);
    if (gbeta) gbeta[c] = static_cast<T>(sum_g);
    if (ggamma) ggamma[c] = static_cast<T>(sum_gx * is);
    coef[3 * c] = (gamma ? static_cast<double>(gamma[c]) : 1.0) * is;
    coef[3 * c + 1] = training && M > 0 ? sum_g / static_cast<double>(M) : 0.0;
    coef[3 * c + 2] = training && M > 0 ? sum_gx * is * is / static_cast<double>(M) : 0.0;
  }
}

template <class T>
__device__ void bn_backward_input(const T* __restrict__ x, const T* __restrict__ gy, i64 N, i64 C, i64 S,
                                  const T* __restrict__ mean, const double* __restrict__ coef, T* __restrict__ gx) {
  MC_FOR(e, N * C * S) {
    const i64 c = (e / S) % C;
    const double mu = static_cast<double>(mean[c]);
    gx[e] = static_cast<T>(coef[3 * c] * (static_cast<double>(gy[e]) - coef[3 * c + 1] -
                                          (static_cast<double>(x[e]) - mu) * coef[3 * c + 2]));
  }
}

#define MC_BATCHNORM(T, S)                                                                                     \
  MC_EXPORT(bn_reduce_##S,                                                                                     \
            (const T* x, const T* gy, const double* center_d, const T* center_t, i64 N, i64 C, i64 S_, i64 parts, \
             int mode, double* ws, double* ws2),                                                               \
            bn_reduce<T>(x, gy, center_d, center_t, N, C, S_, parts, mode, ws, ws2))                           \
  MC_EXPORT(bn_finalize_var_##S,                                                                               \
            (const double* ws, const double* mean_d, i64 C, i64 parts, i64 M, double eps, T* mean, T* var,      \
             T* invstd),                                                                                       \
            bn_finalize_var<T>(ws, mean_d, C, parts, M, eps, mean, var, invstd))                               \
  MC_EXPORT(bn_apply_##S,                                                                                      \
            (const T* x, i64 N, i64 C, i64 S_, const T* mean, const T* invstd, const T* gamma, const T* beta,   \
             T* y),                                                                                            \
            bn_apply<T>(x, N, C, S_, mean, invstd, gamma, beta, y))                                            \
  MC_EXPORT(bn_backward_finalize_##S,                                                                          \
            (const double* ws, const double* ws2, i64 C, i64 parts, i64 M, const T* invstd, const T* gamma,     \
             int training, T* ggamma, T* gbeta, double* coef),                                                 \
            bn_backward_finalize<T>(ws, ws2, C, parts, M, invstd, gamma, training, ggamma, gbeta, coef))       \
  MC_EXPORT(bn_backward_input_##S,                                                                             \
            (const T* x, const T* gy, i64 N, i64 C, i64 S_, const T* mean, const double* coef, T* gx),          \
            bn_backward_input<T>(x, gy, N, C, S_, mean, coef, gx))

MC_BATCHNORM(float, f32)
MC_BATCHNORM(double, f64)

MC_EXPORT(bn_finalize_mean, (const double* ws, double* mean_d, i64 C, i64 parts, i64 M),
          finalize_mean(ws, mean_d, C, parts, M))
