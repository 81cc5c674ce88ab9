// Elementwise activations, AArch64 NEON: relu and leaky_relu (float32 and float64, bitwise equal to
// the reference). The transcendental ones (elu, sigmoid, tanh, gelu) stay on the base table until
// vecmath_avx2.h's polynomials have a NEON port.
#include <arm_neon.h>

#include <algorithm>

#include "neon_kernels.h"
#include "parallel.h"

namespace medconv {
namespace {

template <class T>
using UnaryFn = void (*)(UnaryOp, const T*, T*, int64_t, T);
template <class T>
UnaryFn<T> g_base_unary = nullptr;  // the base table's, for the ops not specialised here

constexpr int64_t kGrain = 1 << 14;  // elements per task at least

// y = x > 0 || x != x ? x : +0 (NaN kept), as the reference
inline float32x4_t relu(float32x4_t v) {
  return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vmvnq_u32(vcleq_f32(v, vdupq_n_f32(0.0f)))));
}
inline float64x2_t relu(float64x2_t v) {
  const uint64x2_t keep = veorq_u64(vcleq_f64(v, vdupq_n_f64(0.0)), vdupq_n_u64(~0ull));
  return vreinterpretq_f64_u64(vandq_u64(vreinterpretq_u64_f64(v), keep));
}
// y = x > 0 ? x : x * alpha
inline float32x4_t leaky(float32x4_t v, float32x4_t a) {
  return vbslq_f32(vcgtq_f32(v, vdupq_n_f32(0.0f)), v, vmulq_f32(v, a));
}
inline float64x2_t leaky(float64x2_t v, float64x2_t a) {
  return vbslq_f64(vcgtq_f64(v, vdupq_n_f64(0.0)), v, vmulq_f64(v, a));
}

inline float32x4_t load(const float* p) { return vld1q_f32(p); }
inline float64x2_t load(const double* p) { return vld1q_f64(p); }
inline void store(float* p, float32x4_t v) { vst1q_f32(p, v); }
inline void store(double* p, float64x2_t v) { vst1q_f64(p, v); }
inline float32x4_t splat(float v) { return vdupq_n_f32(v); }
inline float64x2_t splat(double v) { return vdupq_n_f64(v); }

// y[i] = op(x[i]) for relu / leaky_relu; whole vectors, then the same formula lane by lane.
// x, y: [n] (y may be x)
template <class T>
void unary_neon(UnaryOp op, const T* x, T* y, int64_t n, T alpha) {
  if (op != UnaryOp::relu && op != UnaryOp::leaky_relu) {
    g_base_unary<T>(op, x, y, n, alpha);
    return;
  }
  constexpr int64_t L = 16 / sizeof(T);  // lanes
  const bool is_relu = op == UnaryOp::relu;
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    const auto a = splat(alpha);
    int64_t i = begin;
    for (; i + L <= end; i += L) store(y + i, is_relu ? relu(load(x + i)) : leaky(load(x + i), a));
    for (; i < end; ++i) {
      const T v = x[i];
      y[i] = is_relu ? (v > T(0) ? v : (v != v ? v : T(0))) : (v > T(0) ? v : v * alpha);
    }
  });
}

}  // namespace

void add_eltwise_neon(KernelTable& t) {
  g_base_unary<float> = t.f32.unary;
  g_base_unary<double> = t.f64.unary;
  t.f32.unary = unary_neon<float>;
  t.f64.unary = unary_neon<double>;
}

}  // namespace medconv
