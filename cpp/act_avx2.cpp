// Elementwise activations and maxout, AVX2+FMA. relu, leaky_relu and maxout are bitwise equal to
// the reference; elu, sigmoid, tanh and gelu use the polynomials of vecmath.h (float32;
// float64 keeps the reference for those).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "avx2_kernels.h"
#include "eltwise_avx2.h"
#include "memory.h"
#include "parallel.h"
#include "stream_avx2.h"
#include "vecmath_avx2.h"

namespace medconv {

namespace {

using avx2::tail_mask;

void (*g_unary_f32_base)(UnaryOp, const float*, float*, int64_t, float) = nullptr;
void (*g_unary_f64_base)(UnaryOp, const double*, double*, int64_t, double) = nullptr;
void (*g_maxout_f32_base)(const float*, float*, int64_t, int64_t, int64_t, int64_t) = nullptr;

constexpr int64_t kGrainVectors = 2048;  // 64 KiB of float32 per task at least

// y[i] = f(x[i]) over n floats, 8 at a time; the last partial vector goes through the same f with
// masked loads and stores, so every element's bits are the same wherever a thread chunk ends.
// A large out-of-place y is written with streaming stores (memory.h, stream_avx2.h).
// x, y: [n] (y may be x)
template <class F>
void map_f32(const float* x, float* y, int64_t n, F f) {
  const int64_t full = n / 8, rest = n % 8;
  const bool stream = y != x && n * 4 >= kStreamStoreBytes;
  parallel_for(full + (rest ? 1 : 0), kGrainVectors, [&](int64_t begin, int64_t end) {
    const int64_t stop = std::min(end, full);
    const float* xb = x + 8 * begin;
    auto vec = [&](int64_t v) { return f(_mm256_loadu_ps(xb + 8 * v)); };
    if (stream) {
      avx2::write_vectors<true>(y + 8 * begin, stop - begin, vec);
      _mm_sfence();
    } else {
      avx2::write_vectors<false>(y + 8 * begin, stop - begin, vec);
    }
    if (end > full) {
      const __m256i m = tail_mask(rest);
      _mm256_maskstore_ps(y + 8 * full, m, f(_mm256_maskload_ps(x + 8 * full, m)));
    }
  });
}

// y[i] = f(x[i]) over n doubles, 4 at a time, scalar g for the tail (same bits as f's lanes).
// x, y: [n]
template <class F, class G>
void map_f64(const double* x, double* y, int64_t n, F f, G g) {
  const int64_t full = n / 4;
  parallel_for(full + 1, kGrainVectors * 2, [&](int64_t begin, int64_t end) {
    const int64_t stop = std::min(end, full);
    for (int64_t v = begin; v < stop; ++v) _mm256_storeu_pd(y + 4 * v, f(_mm256_loadu_pd(x + 4 * v)));
    if (end > full)
      for (int64_t i = 4 * full; i < n; ++i) y[i] = g(x[i]);
  });
}

void unary_f32(UnaryOp op, const float* x, float* y, int64_t n, float alpha) {
  const __m256 zero = _mm256_setzero_ps();
  switch (op) {
    case UnaryOp::relu:
      // y = x > 0 || x != x ? x : +0
      map_f32(x, y, n, [&](__m256 v) { return _mm256_and_ps(v, _mm256_cmp_ps(v, zero, _CMP_NLE_UQ)); });
      return;
    case UnaryOp::leaky_relu: {
      // y = x > 0 ? x : x * alpha
      const __m256 a = _mm256_set1_ps(alpha);
      map_f32(x, y, n, [&](__m256 v) {
        return _mm256_blendv_ps(_mm256_mul_ps(v, a), v, _mm256_cmp_ps(v, zero, _CMP_GT_OQ));
      });
      return;
    }
    case UnaryOp::elu: {
      // y = x > 0 ? x : alpha * expm1(x)
      const __m256 a = _mm256_set1_ps(alpha);
      map_f32(x, y, n, [&](__m256 v) { return vecmath::elu<avx2::Avx2Vec>(v, a); });
      return;
    }
    case UnaryOp::sigmoid:
      // y = 1 / (1 + exp(-x))
      map_f32(x, y, n, [](__m256 v) { return avx2::sigmoid_ps(v); });
      return;
    case UnaryOp::tanh:
      // y = tanh(x)
      map_f32(x, y, n, [](__m256 v) { return avx2::tanh_ps(v); });
      return;
    case UnaryOp::gelu:
      // y = 0.5 x (1 + erf(x / sqrt 2))
      map_f32(x, y, n, [](__m256 v) { return avx2::gelu_ps(v); });
      return;
    case UnaryOp::gelu_tanh:
      // y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      map_f32(x, y, n, [](__m256 v) { return avx2::gelu_tanh_ps(v); });
      return;
  }
  g_unary_f32_base(op, x, y, n, alpha);
}

void unary_f64(UnaryOp op, const double* x, double* y, int64_t n, double alpha) {
  const __m256d zero = _mm256_setzero_pd();
  if (op == UnaryOp::relu) {
    // y = x > 0 || x != x ? x : +0
    map_f64(x, y, n, [&](__m256d v) { return _mm256_and_pd(v, _mm256_cmp_pd(v, zero, _CMP_NLE_UQ)); },
            [](double v) { return v > 0.0 ? v : (v != v ? v : 0.0); });
  } else if (op == UnaryOp::leaky_relu) {
    // y = x > 0 ? x : x * alpha
    const __m256d a = _mm256_set1_pd(alpha);
    map_f64(x, y, n,
            [&](__m256d v) { return _mm256_blendv_pd(_mm256_mul_pd(v, a), v, _mm256_cmp_pd(v, zero, _CMP_GT_OQ)); },
            [&](double v) { return v > 0.0 ? v : v * alpha; });
  } else {
    g_unary_f64_base(op, x, y, n, alpha);
  }
}

// y[og, i] = max over p of x[og, p, i], scanning p in order: a later value wins if greater or NaN
// (so NaN propagates as the last NaN and ties keep the first, as the reference).
// x: [outer * groups, pieces, inner], y: [outer * groups, inner]
void maxout_f32(const float* x, float* y, int64_t outer, int64_t groups, int64_t pieces, int64_t inner) {
  if (inner < 8) {
    g_maxout_f32_base(x, y, outer, groups, pieces, inner);
    return;
  }
  constexpr int64_t block = 1024;  // inner elements per task
  const int64_t blocks = (inner + block - 1) / block;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, pieces * std::min(inner, block)));
  parallel_for(outer * groups * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t og = t / blocks, i0 = (t % blocks) * block, i1 = std::min(inner, i0 + block);
      const float* xs = x + og * pieces * inner;
      float* ys = y + og * inner;
      int64_t i = i0;
      // ys[i..i+8) = running max of xs[p * inner + i..]
      for (; i + 8 <= i1; i += 8) {
        __m256 best = _mm256_loadu_ps(xs + i);
        for (int64_t p = 1; p < pieces; ++p) {
          const __m256 v = _mm256_loadu_ps(xs + p * inner + i);
          const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
          best = _mm256_blendv_ps(best, v, take);
        }
        _mm256_storeu_ps(ys + i, best);
      }
      for (; i < i1; ++i) {
        float best = xs[i];
        for (int64_t p = 1; p < pieces; ++p) {
          const float v = xs[p * inner + i];
          best = (v > best || v != v) ? v : best;
        }
        ys[i] = best;
      }
    }
  });
}

}  // namespace

void add_eltwise_avx2(KernelTable& t) {
  // The fallbacks are the entries this table had (the reference); set once, before any use.
  if (!g_unary_f32_base) g_unary_f32_base = t.f32.unary;
  if (!g_unary_f64_base) g_unary_f64_base = t.f64.unary;
  if (!g_maxout_f32_base) g_maxout_f32_base = t.f32.maxout;
  t.f32.unary = unary_f32;
  t.f64.unary = unary_f64;
  t.f32.maxout = maxout_f32;
  add_softmax_avx2(t);
}

}  // namespace medconv
