// Elementwise activations, AVX-512F, float32: relu and leaky_relu (bitwise the reference's) and
// vecmath.h's elu, sigmoid, tanh and gelu on 16 lanes (bitwise AVX2's). float64 and maxout stay on
// the base (AVX2) table.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "avx512_kernels.h"
#include "memory.h"
#include "parallel.h"
#include "vec_avx512.h"

namespace medconv {
namespace {

using avx512::Avx512Vec;
using avx512::first_lanes;

void (*g_unary_f32_base)(UnaryOp, const float*, float*, int64_t, float) = nullptr;

constexpr int64_t kGrainVectors = 1024;  // 64 KiB of float32 per task at least
constexpr int kBurst = 4;                // vectors computed before their stores: independent chains


// ys[16v, 16v + 16) = f(xs[16v, 16v + 16)) for v in [begin, stop), kBurst vectors computed before
// their stores (independent chains); streamed with kStream (ys 64-byte aligned).
template <bool kStream, class F>
inline void map_vectors(const float* xs, float* ys, int64_t begin, int64_t stop, F f) {
  auto put = [ys](int64_t v, __m512 b) {
    if (kStream) _mm512_stream_ps(ys + 16 * v, b);
    else _mm512_storeu_ps(ys + 16 * v, b);
  };
  int64_t v = begin;
  for (; v + kBurst <= stop; v += kBurst) {
    __m512 b[kBurst];
    for (int k = 0; k < kBurst; ++k) b[k] = f(_mm512_loadu_ps(xs + 16 * (v + k)));
    for (int k = 0; k < kBurst; ++k) put(v + k, b[k]);
  }
  for (; v < stop; ++v) put(v, f(_mm512_loadu_ps(xs + 16 * v)));
}

// y[i] = f(x[i]) over n floats, 16 at a time. The vectors are laid on y's 64-byte lines: the
// elements before y's first line boundary, and the last partial vector, go through the same f
// with masked loads and stores, so every element's bits are the same wherever a chunk ends. A large
// out-of-place y is written with streaming stores (memory.h), each line whole.
// x, y: [n] (y may be x)
template <class F>
void map_f32(const float* x, float* y, int64_t n, F f) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(y);
  const int64_t head = addr & 3 ? 0 : std::min<int64_t>(n, static_cast<int64_t>((64 - (addr & 63)) & 63) / 4);
  const bool stream = y != x && n * 4 >= kStreamStoreBytes && (addr & 3) == 0;
  if (head) {
    const __mmask16 m = first_lanes(head);
    _mm512_mask_storeu_ps(y, m, f(_mm512_maskz_loadu_ps(m, x)));
  }
  const float* xs = x + head;
  float* ys = y + head;
  const int64_t full = (n - head) / 16, rest = (n - head) % 16;
  parallel_for(full + (rest ? 1 : 0), kGrainVectors, [=](int64_t begin, int64_t end) {
    const int64_t stop = std::min(end, full);
    if (stream) {
      map_vectors<true>(xs, ys, begin, stop, f);
      _mm_sfence();  // the streamed stores are visible before the call returns
    } else {
      map_vectors<false>(xs, ys, begin, stop, f);
    }
    if (end > full) {
      const __mmask16 m = first_lanes(rest);
      _mm512_mask_storeu_ps(ys + 16 * full, m, f(_mm512_maskz_loadu_ps(m, xs + 16 * full)));
    }
  });
}

void unary_f32(UnaryOp op, const float* x, float* y, int64_t n, float alpha) {
  using V = Avx512Vec;
  const __m512 zero = _mm512_setzero_ps();
  switch (op) {
    case UnaryOp::relu:  // y = x > 0 || x != x ? x : +0
      map_f32(x, y, n, [=](__m512 v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_NLE_UQ), v); });
      return;
    case UnaryOp::leaky_relu: {  // y = x > 0 ? x : x * alpha
      const __m512 a = _mm512_set1_ps(alpha);
      map_f32(x, y, n, [=](__m512 v) { return V::select(V::gt(v, zero), v, _mm512_mul_ps(v, a)); });
      return;
    }
    case UnaryOp::elu: {  // y = x > 0 ? x : alpha * expm1(x)
      const __m512 a = _mm512_set1_ps(alpha);
      map_f32(x, y, n, [=](__m512 v) { return vecmath::elu<V>(v, a); });
      return;
    }
    case UnaryOp::sigmoid:
      map_f32(x, y, n, [](__m512 v) { return vecmath::sigmoid<V>(v); });
      return;
    case UnaryOp::tanh:
      map_f32(x, y, n, [](__m512 v) { return vecmath::tanh<V>(v); });
      return;
    case UnaryOp::gelu:
      map_f32(x, y, n, [](__m512 v) { return vecmath::gelu<V>(v); });
      return;
    case UnaryOp::gelu_tanh:
      map_f32(x, y, n, [](__m512 v) { return vecmath::gelu_tanh<V>(v); });
      return;
  }
  g_unary_f32_base(op, x, y, n, alpha);
}

}  // namespace

void add_eltwise_avx512(KernelTable& t) {
  if (!g_unary_f32_base) g_unary_f32_base = t.f32.unary;  // the base table's, set once before any use
  t.f32.unary = unary_f32;
}

}  // namespace medconv
