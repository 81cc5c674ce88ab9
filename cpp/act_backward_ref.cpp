// Activation, softmax and maxout gradients, the portable reference (torch's derivative formulas).
#include <algorithm>
#include <cmath>

#include "dispatch.h"
#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {

namespace {
template <class T>
inline T sigmoid_of(T v) { return T(1) / (T(1) + std::exp(-v)); }

template <class T>
inline T unary_grad(UnaryOp op, T x, T y, bool have_y, T g, T alpha) {
  switch (op) {
    case UnaryOp::relu: return x <= T(0) ? T(0) : g;                   // NaN passes the gradient, as torch
    case UnaryOp::leaky_relu: return x > T(0) ? g : g * alpha;
    case UnaryOp::elu: return x <= T(0) ? g * alpha * std::exp(x) : g;
    case UnaryOp::sigmoid: {
      const T s = have_y ? y : sigmoid_of(x);
      return g * (T(1) - s) * s;
    }
    case UnaryOp::tanh: {
      const T t = have_y ? y : std::tanh(x);
      return g * (T(1) - t * t);
    }
    case UnaryOp::gelu: {  // d/dx x*Phi(x) = Phi(x) + x*phi(x)
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
      const T pdf = T(0.39894228040143267794) * std::exp(x * x * T(-0.5));
      return g * (cdf + x * pdf);
    }
    case UnaryOp::gelu_tanh: {
      const T beta = T(0.79788456080286535588), kappa = T(0.044715);
      const T x2 = x * x;
      const T t = std::tanh(beta * (x + kappa * x2 * x));
      const T left = T(0.5) * x, right = T(1) + t;
      const T inner_derivative = beta * (T(1) + T(3) * kappa * x2);
      return g * (T(0.5) * right + left * (T(1) - t * t) * inner_derivative);
    }
  }
  return g;
}
}  // namespace

// out[i] = f(a[i], b[i]) over [0, n): local restrict pointers and a by-value functor, so that the
// loop is branch-free and vectorises.
template <class T, class Fn>
void map2(const T* a, const T* b, T* out, int64_t n, Fn f) {
  parallel_for(n, 1 << 14, [=](int64_t begin, int64_t end) {
    const T* __restrict pa = a;
    const T* __restrict pb = b;
    T* __restrict po = out;
    for (int64_t i = begin; i < end; ++i) po[i] = f(pa[i], pb[i]);
  });
}

// gx[i] = gy[i] * op'(x[i]); y (may be null) is op(x), read by sigmoid and tanh.
template <class T>
void unary_backward_ref(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha) {
  switch (op) {
    case UnaryOp::relu: map2(x, gy, gx, n, [](T v, T g) { return v <= T(0) ? T(0) : g; }); return;
    case UnaryOp::leaky_relu: map2(x, gy, gx, n, [alpha](T v, T g) { return v > T(0) ? g : g * alpha; }); return;
    case UnaryOp::sigmoid:
      if (y) {
        map2(y, gy, gx, n, [](T s, T g) { return g * (T(1) - s) * s; });
        return;
      }
      break;
    case UnaryOp::tanh:
      if (y) {
        map2(y, gy, gx, n, [](T t, T g) { return g * (T(1) - t * t); });
        return;
      }
      break;
    default: break;
  }
  map2(x, gy, gx, n, [op, alpha](T v, T g) { return unary_grad(op, v, T(0), false, g, alpha); });
}

// The same, the fastest way available: sigmoid, tanh and ELU given only x take their outputs from the
// active ISA's forward kernel (dispatch.h), 4096 values at a time, and then the output's formula
// (ELU: alpha e^x = y + alpha for x <= 0); the others as unary_backward_ref.
template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha) {
  const bool from_output = !y && (op == UnaryOp::sigmoid || op == UnaryOp::tanh || op == UnaryOp::elu);
  if (!from_output) {
    unary_backward_ref<T>(op, x, y, gy, gx, n, alpha);
    return;
  }
  constexpr int64_t kChunk = 4096;
  const auto forward = kernels_for<T>().unary;
  parallel_for((n + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    T out[kChunk];
    for (int64_t c = begin; c < end; ++c) {
      const int64_t i0 = c * kChunk, m = std::min(kChunk, n - i0);
      forward(op, x + i0, out, m, alpha);  // runs on this thread: the pool is busy with this call
      const T* __restrict xs = x + i0;
      const T* __restrict gs = gy + i0;
      T* __restrict gs_out = gx + i0;
      if (op == UnaryOp::sigmoid) {
        for (int64_t i = 0; i < m; ++i) gs_out[i] = gs[i] * (T(1) - out[i]) * out[i];
      } else if (op == UnaryOp::tanh) {
        for (int64_t i = 0; i < m; ++i) gs_out[i] = gs[i] * (T(1) - out[i] * out[i]);
      } else {
        for (int64_t i = 0; i < m; ++i) gs_out[i] = xs[i] <= T(0) ? gs[i] * (out[i] + alpha) : gs[i];
      }
    }
  });
}

// y, gy, gx: [outer, dim, inner]
// softmax: gx = y * (gy - sum_d gy*y); log_softmax: gx = gy - exp(y) * sum_d gy
template <class T>
void softmax_backward_ref(const T* y, const T* gy, T* gx, int64_t outer, int64_t dim, int64_t inner, bool log) {
  constexpr int64_t block = 256;
  const int64_t blocks_per_outer = (inner + block - 1) / block;
  parallel_for(outer * blocks_per_outer, 1, [&](int64_t begin, int64_t end) {
    T sum[block];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / blocks_per_outer, i0 = (t % blocks_per_outer) * block;
      const int64_t nb = std::min(block, inner - i0);
      const int64_t base = o * dim * inner + i0;
      const T* ys = y + base;
      const T* gs = gy + base;
      T* xs = gx + base;
      for (int64_t i = 0; i < nb; ++i) sum[i] = T(0);
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < nb; ++i) sum[i] += log ? gs[d * inner + i] : gs[d * inner + i] * ys[d * inner + i];
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t k = d * inner + i;
          xs[k] = log ? gs[k] - std::exp(ys[k]) * sum[i] : ys[k] * (gs[k] - sum[i]);
        }
    }
  });
}

// x: [outer, groups, pieces, inner], gy: [outer, groups, inner], gx like x. The winner is the
// piece maxout_ref picks: the first maximum, unless a later piece is NaN (the last NaN wins).
template <class T>
void maxout_backward_ref(const T* x, const T* gy, T* gx, int64_t outer, int64_t groups, int64_t pieces, int64_t inner) {
  parallel_for(outer * groups, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, pieces * inner)),
               [&](int64_t begin, int64_t end) {
    for (int64_t og = begin; og < end; ++og) {
      const T* xs = x + og * pieces * inner;
      const T* gs = gy + og * inner;
      T* out = gx + og * pieces * inner;
      std::fill(out, out + pieces * inner, T(0));
      for (int64_t i = 0; i < inner; ++i) {
        T best = xs[i];
        int64_t win = 0;
        for (int64_t p = 1; p < pieces; ++p) {
          const T v = xs[p * inner + i];
          if (v > best || v != v) best = v, win = p;
        }
        out[win * inner + i] = gs[i];
      }
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                                          \
  template void unary_backward_ref<T>(UnaryOp, const T*, const T*, const T*, T*, int64_t, T);           \
  template void unary_backward<T>(UnaryOp, const T*, const T*, const T*, T*, int64_t, T);               \
  template void softmax_backward_ref<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);       \
  template void maxout_backward_ref<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
