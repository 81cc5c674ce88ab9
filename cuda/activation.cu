// Activations (forward and backward), softmax / log_softmax (forward and backward), maxout.
// Formulas are those of cpp/act_ref.cpp, cpp/act_backward_ref.cpp and cpp/softmax_ref.cpp
// (torch's); op codes are medconv._core.UNARY_OPS.
#include "common.cuh"

// ------------------------------------------------------------------ elementwise

// relu=0, leaky_relu=1, elu=2, sigmoid=3, tanh=4, gelu=5, gelu_tanh=6 (medconv._core.UNARY_OPS)
template <class T>
__device__ __forceinline__ T unary_value(int op, T v, T alpha) {
  switch (op) {
    case 0: return v > T(0) ? v : (v != v ? v : T(0));  // NaN stays NaN
    case 1: return v > T(0) ? v : v * alpha;
    case 2: return v > T(0) ? v : alpha * mc_expm1(v);
    case 3: return T(1) / (T(1) + mc_exp(-v));
    case 4: return mc_tanh(v);
    case 5: return T(0.5) * v * (T(1) + mc_erf(v * T(0.70710678118654752440)));
    case 6: {
      const T inner = T(0.79788456080286535588) * (v + T(0.044715) * v * v * v);
      return T(0.5) * v * (T(1) + mc_tanh(inner));
    }
  }
  return v;
}

// y[i] = op(x[i])     x, y: [n]
template <class T>
__device__ void unary_forward(const T* __restrict__ x, T* __restrict__ y, i64 n, int op, T alpha) {
  MC_FOR(i, n) y[i] = unary_value(op, x[i], alpha);
}

// gx[i] = gy[i] * op'(x[i]); y = op(x) (may be null) is read by sigmoid and tanh instead of x.
template <class T>
__device__ void unary_backward(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ gy,
                               T* __restrict__ gx, i64 n, int op, T alpha) {
  MC_FOR(i, n) {
    const T g = gy[i];
    const T v = x ? x[i] : T(0);
    T r = g;
    switch (op) {
      case 0: r = v <= T(0) ? T(0) : g; break;  // NaN passes the gradient, as torch
      case 1: r = v > T(0) ? g : g * alpha; break;
      case 2: r = v <= T(0) ? g * alpha * mc_exp(v) : g; break;
      case 3: {
        const T s = y ? y[i] : T(1) / (T(1) + mc_exp(-v));
        r = g * (T(1) - s) * s;
        break;
      }
      case 4: {
        const T t = y ? y[i] : mc_tanh(v);
        r = g * (T(1) - t * t);
        break;
      }
      case 5: {  // d/dx x*Phi(x) = Phi(x) + x*phi(x)
        const T cdf = T(0.5) * (T(1) + mc_erf(v * T(0.70710678118654752440)));
        const T pdf = T(0.39894228040143267794) * mc_exp(v * v * T(-0.5));
        r = g * (cdf + v * pdf);
        break;
      }
      case 6: {
        const T beta = T(0.79788456080286535588), kappa = T(0.044715);
        const T x2 = v * v;
        const T t = mc_tanh(beta * (v + kappa * x2 * v));
        const T inner_derivative = beta * (T(1) + T(3) * kappa * x2);
        r = g * (T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * inner_derivative);
        break;
      }
    }
    gx[i] = r;
  }
}

// ------------------------------------------------------------------ softmax over [outer, dim, inner]

// One thread per column (o, i): for inner > 1 (coalesced along inner) or short rows.
// softmax: y = exp(x - max) / sum; log_softmax: y = x - max - log(sum). An all -inf column
// uses max 0 (gives NaN like torch); NaN propagates.
template <class T>
__device__ void softmax_columns(const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 dim, i64 inner, int log) {
  MC_FOR(col, outer * inner) {
    const i64 o = col / inner, i = col - o * inner;
    const T* xs = x + o * dim * inner + i;
    T* ys = y + o * dim * inner + i;
    T mx = mc_neg_inf<T>();
    for (i64 d = 0; d < dim; ++d) mx = mc_nanmax(mx, xs[d * inner]);
    if (mx == mc_neg_inf<T>()) mx = T(0);
    T sum = T(0);
    for (i64 d = 0; d < dim; ++d) sum += mc_exp(xs[d * inner] - mx);
    if (log) {  // (x - max) - log(sum): max + log(sum) would lose log(sum) for a huge max
      const T lsum = mc_log(sum);
      for (i64 d = 0; d < dim; ++d) ys[d * inner] = (xs[d * inner] - mx) - lsum;
    } else {
      const T r = T(1) / sum;
      for (i64 d = 0; d < dim; ++d) ys[d * inner] = mc_exp(xs[d * inner] - mx) * r;
    }
  }
}

// One block of MC_THREADS per row (inner == 1, long rows): block reductions for max and sum.
template <class T>
__device__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 dim, int log) {
  __shared__ T buf[MC_THREADS];
  for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* xs = x + row * dim;
    T* ys = y + row * dim;
    T mx = mc_neg_inf<T>();
    for (i64 d = threadIdx.x; d < dim; d += MC_THREADS) mx = mc_nanmax(mx, xs[d]);
    mx = mc_block_nanmax(mx, buf);
    if (mx == mc_neg_inf<T>()) mx = T(0);
    T sum = T(0);
    for (i64 d = threadIdx.x; d < dim; d += MC_THREADS) sum += mc_exp(xs[d] - mx);
    sum = mc_block_sum(sum, buf);
    if (log) {
      const T lsum = mc_log(sum);
      for (i64 d = threadIdx.x; d < dim; d += MC_THREADS) ys[d] = (xs[d] - mx) - lsum;
    } else {
      const T r = T(1) / sum;
      for (i64 d = threadIdx.x; d < dim; d += MC_THREADS) ys[d] = mc_exp(xs[d] - mx) * r;
    }
  }
}

// y, gy, gx: [outer, dim, inner]
// softmax: gx = y * (gy - sum_d gy*y); log_softmax: gx = gy - exp(y) * sum_d gy
template <class T>
__device__ void softmax_backward_columns(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                                         i64 outer, i64 dim, i64 inner, int log) {
  MC_FOR(col, outer * inner) {
    const i64 o = col / inner, i = col - o * inner;
    const i64 base = o * dim * inner + i;
    T sum = T(0);
    for (i64 d = 0; d < dim; ++d) {
      const i64 k = base + d * inner;
      sum += log ? gy[k] : gy[k] * y[k];
    }
    for (i64 d = 0; d < dim; ++d) {
      const i64 k = base + d * inner;
      gx[k] = log ? gy[k] - mc_exp(y[k]) * sum : y[k] * (gy[k] - sum);
    }
  }
}

template <class T>
__device__ void softmax_backward_rows(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                                      i64 outer, i64 dim, int log) {
  __shared__ T buf[MC_THREADS];
  for (i64 row = blockIdx.x; row < outer; row += gridDim.x) {
    const i64 base = row * dim;
    T sum = T(0);
    for (i64 d = threadIdx.x; d < dim; d += MC_THREADS) sum += log ? gy[base + d] : gy[base + d] * y[base + d];
    sum = mc_block_sum(sum, buf);
    for (i64 d = threadIdx.x; d < dim; d += MC_THREADS) {
      const i64 k = base + d;
      gx[k] = log ? gy[k] - mc_exp(y[k]) * sum : y[k] * (gy[k] - sum);
    }
  }
}

// ------------------------------------------------------------------ maxout

// x: [outer, groups, pieces, inner], y: [outer, groups, inner]; y = max over pieces (NaN wins)
template <class T>
__device__ void maxout_forward(const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 groups, i64 pieces,
                               i64 inner) {
  MC_FOR(e, outer * groups * inner) {
    const i64 og = e / inner, i = e - og * inner;
    const T* xs = x + og * pieces * inner + i;
    T best = xs[0];
    for (i64 p = 1; p < pieces; ++p) best = mc_nanmax(best, xs[p * inner]);
    y[e] = best;
  }
}

// gx like x: gy goes to the piece that won (the first maximum, or the last NaN), zeros elsewhere.
// One thread per output element writes all its pieces.
template <class T>
__device__ void maxout_backward(const T* __restrict__ x, const T* __restrict__ gy, T* __restrict__ gx, i64 outer,
                                i64 groups, i64 pieces, i64 inner) {
  MC_FOR(e, outer * groups * inner) {
    const i64 og = e / inner, i = e - og * inner;
    const T* xs = x + og * pieces * inner + i;
    T* out = gx + og * pieces * inner + i;
    T best = xs[0];
    i64 win = 0;
    for (i64 p = 1; p < pieces; ++p) {
      const T v = xs[p * inner];
      if (v > best || v != v) best = v, win = p;
    }
    for (i64 p = 0; p < pieces; ++p) out[p * inner] = p == win ? gy[e] : T(0);
  }
}

#define MC_ACTIVATION(T, S)                                                                                     \
  MC_EXPORT(unary_forward_##S, (const T* x, T* y, i64 n, int op, T alpha), unary_forward<T>(x, y, n, op, alpha)) \
  MC_EXPORT(unary_backward_##S, (const T* x, const T* y, const T* gy, T* gx, i64 n, int op, T alpha),          \
            unary_backward<T>(x, y, gy, gx, n, op, alpha))                                                      \
  MC_EXPORT(softmax_columns_##S, (const T* x, T* y, i64 outer, i64 dim, i64 inner, int log),                    \
            softmax_columns<T>(x, y, outer, dim, inner, log))                                                   \
  MC_EXPORT(softmax_rows_##S, (const T* x, T* y, i64 outer, i64 dim, int log), softmax_rows<T>(x, y, outer, dim, log)) \
  MC_EXPORT(softmax_backward_columns_##S, (const T* y, const T* gy, T* gx, i64 outer, i64 dim, i64 inner, int log), \
            softmax_backward_columns<T>(y, gy, gx, outer, dim, inner, log))                                     \
  MC_EXPORT(softmax_backward_rows_##S, (const T* y, const T* gy, T* gx, i64 outer, i64 dim, int log),           \
            softmax_backward_rows<T>(y, gy, gx, outer, dim, log))                                               \
  MC_EXPORT(maxout_forward_##S, (const T* x, T* y, i64 outer, i64 groups, i64 pieces, i64 inner),              \
            maxout_forward<T>(x, y, outer, groups, pieces, inner))                                              \
  MC_EXPORT(maxout_backward_##S, (const T* x, const T* gy, T* gx, i64 outer, i64 groups, i64 pieces, i64 inner), \
            maxout_backward<T>(x, gy, gx, outer, groups, pieces, inner))

MC_ACTIVATION(float, f32)
MC_ACTIVATION(double, f64)
