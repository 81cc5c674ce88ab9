// Elementwise activations, the portable reference.
#include <cmath>

#include "kernels.h"
#include "parallel.h"

namespace medconv {

template <class T>
inline T apply_unary(UnaryOp op, T v, T alpha) {
  switch (op) {
    case UnaryOp::relu: return v > T(0) ? v : (v != v ? v : T(0));  // NaN stays NaN
    case UnaryOp::leaky_relu: return v > T(0) ? v : v * alpha;
    case UnaryOp::elu: return v > T(0) ? v : alpha * std::expm1(v);
    case UnaryOp::sigmoid: return T(1) / (T(1) + std::exp(-v));
    case UnaryOp::tanh: return std::tanh(v);
    case UnaryOp::gelu: return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440)));
    case UnaryOp::gelu_tanh: {
      const T inner = T(0.79788456080286535588) * (v + T(0.044715) * v * v * v);
      return T(0.5) * v * (T(1) + std::tanh(inner));
    }
  }
  return v;
}

// y[i] = op(x[i]); alpha is leaky_relu's slope or elu's alpha
template <class T>
void unary_ref(UnaryOp op, const T* x, T* y, int64_t n, T alpha) {
  parallel_for(n, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = apply_unary(op, x[i], alpha);
  });
}

template void unary_ref<float>(UnaryOp, const float*, float*, int64_t, float);
template void unary_ref<double>(UnaryOp, const double*, double*, int64_t, double);

}  // namespace medconv
