// Vectorised float32 math for the AVX2+FMA kernels (include only from *_avx2.cpp files).
// Polynomial coefficients are minimax fits (relative error) made in float64 against mpmath;
// each function keeps IEEE special values: NaN propagates, -inf and +inf give the limits.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace medconv {
namespace avx2 {

inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// Masks for a tail of n < 8 lanes: lane i active when i < n (for maskload / maskstore).
inline __m256i tail_mask(int64_t n) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lanes);
}

// Horizontal sums / maxima of one vector.
inline float hmax_ps(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// float32 lanes 0-3 / 4-7 as float64, and two float64 vectors back as one float32 vector.
inline __m256d low_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
inline __m256d high_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
inline __m256 to_ps(__m256d lo, __m256d hi) {
  return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(lo)), _mm256_cvtpd_ps(hi), 1);
}

inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

// (e^r - 1 - r) / r^2 on |r| <= ln(2)/2, relative error 3e-9: Horner from kExpm1Tail[0].
constexpr int kExpm1TailTerms = 6;
constexpr float kExpm1Tail[kExpm1TailTerms] = {1.9859230087604374e-4f, 1.3934499584138393e-3f, 8.333359844982624e-3f,
                                               4.166645556688309e-2f,  1.666666716337204e-1f,  0.5f};
inline __m256 expm1_tail_poly(__m256 r) {
  __m256 p = _mm256_set1_ps(kExpm1Tail[0]);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpm1Tail[1]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpm1Tail[2]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpm1Tail[3]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpm1Tail[4]));
  return _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpm1Tail[5]));
}

// Cody-Waite reduction: y = n ln2 + r with |r| <= ln(2)/2 (r exact up to one rounding);
// y is clamped to >= lowest first (NaN kept), so n >= -127 for the default -88.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;  // 9 bits: n kLn2Hi is exact
constexpr float kLn2Lo = -2.12194440e-4f;
struct Reduced {
  __m256 r, n;
};
inline Reduced reduce_ln2(__m256 y, __m256 lowest) {
  y = _mm256_max_ps(lowest, y);  // second operand wins for NaN: NaN kept
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(y, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), y);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  return {r, n};
}
inline Reduced reduce_ln2(__m256 y, float lowest = -88.0f) { return reduce_ln2(y, _mm256_set1_ps(lowest)); }

// 2^n for integer-valued n in [-127, 127]; n = -127 gives 0 (used to flush underflow).
inline __m256 pow2n(__m256 n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

// exp(y) for y <= 0 (or NaN): error <= 1 ulp; y < -87.3 underflows to subnormals, then 0.
inline __m256 exp_nonpos(__m256 y) {
  const Reduced q = reduce_ln2(y);
  const __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(q.r, q.r), expm1_tail_poly(q.r), q.r);  // e^r - 1
  return _mm256_mul_ps(_mm256_add_ps(p, _mm256_set1_ps(1.0f)), pow2n(q.n));
}

// expm1(y) for y <= 0 (or NaN): relative error <= ~1.5 ulp; -0 gives -0; y < -17.4 gives -1.
inline __m256 expm1_nonpos(__m256 y) {
  const Reduced q = reduce_ln2(y);
  const __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(q.r, q.r), expm1_tail_poly(q.r), q.r);  // e^r - 1
  const __m256 s = pow2n(q.n);
  // 2^n (e^r - 1) + (2^n - 1): one rounding; n = 0 gives p itself
  const __m256 out = _mm256_fmadd_ps(s, p, _mm256_sub_ps(s, _mm256_set1_ps(1.0f)));
  return _mm256_blendv_ps(out, y, _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_EQ_OQ));  // keep -0
}

// sigmoid(t) = 1 / (1 + e^-t), from e = exp(-|t|) so nothing overflows: t >= 0 gives 1 / (1 + e),
// t < 0 gives e / (1 + e). NaN propagates, +-inf give 1 and 0.
inline __m256 sigmoid_ps(__m256 t) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp_nonpos(_mm256_or_ps(t, _mm256_set1_ps(-0.0f)));  // -|t|
  const __m256 num = _mm256_blendv_ps(one, e, _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_LT_OQ));
  return _mm256_div_ps(num, _mm256_add_ps(one, e));
}

// tanh(x) = sign(x) * -t / (t + 2) with t = expm1(-2|x|) in [-1, 0]: no cancellation anywhere.
inline __m256 tanh_ps(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 t = expm1_nonpos(_mm256_mul_ps(_mm256_or_ps(x, sign), _mm256_set1_ps(2.0f)));
  const __m256 mag = _mm256_div_ps(_mm256_xor_ps(t, sign), _mm256_add_ps(t, _mm256_set1_ps(2.0f)));
  return _mm256_or_ps(_mm256_andnot_ps(sign, mag), _mm256_and_ps(x, sign));
}

// gelu(x) = x * Phi(x) = 0.5 x erfc(-x / sqrt 2), relatively accurate for every x (2.9e-7 worst):
//   erfc(z) = F(z) exp(-z^2), z = |x| / sqrt 2, with z^2 = x^2 / 2 kept as hi + lo
//   (F: a degree-12 polynomial in z - 1 for z < 2, H(u) / z with u = 1/z beyond);
//   x < 0: x * (0.5 erfc(z)),  x >= 0: x * (1 - 0.5 erfc(z)), which never cancels (Phi >= 1/2).
// gelu(-inf) is NaN (as 0.5 * -inf * (1 + erf(-inf)) in the reference), gelu(+inf) = +inf.
inline __m256 gelu_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
  const __m256 a = _mm256_min_ps(abs_ps(x), _mm256_set1_ps(20.0f));  // finite; erfc(20 / sqrt 2) = 0 anyway
  // F(z) = erfc(z) e^{z^2} on [0, 2): polynomial in z - 1
  const __m256 z = _mm256_mul_ps(a, _mm256_set1_ps(0.70710678118654752f));
  const __m256 v = _mm256_sub_ps(z, one);
  __m256 f = _mm256_set1_ps(1.9195640561520122e-05f);
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(-6.326565198833123e-05f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(0.00012970168609172106f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(-0.00035833928268402815f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(0.0010510215070098639f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(-0.0027833362109959126f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(0.0069707240909338f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(-0.016657749190926552f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(0.03757202625274658f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(-0.07922746986150742f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(0.15437158942222595f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(-0.2732119858264923f));
  f = _mm256_fmadd_ps(f, v, _mm256_set1_ps(0.42758357524871826f));
  // z >= 2 (|x| >= 2.83, a few lanes in a hundred for unit-scale data): H(1/z) / z, computed only
  // when some lane needs it (the division is the dearest instruction here)
  const __m256 far = _mm256_cmp_ps(z, _mm256_set1_ps(2.0f), _CMP_GE_OQ);
  __m256 F = f;
  if (_mm256_movemask_ps(far)) {
    const __m256 u = _mm256_div_ps(one, _mm256_max_ps(z, one));
    __m256 h = _mm256_set1_ps(-3.171813184057647e-1f);
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(5.756179751182496e-1f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(-6.253057390167074e-2f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(-6.567107699836761e-1f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(6.23723359406028e-1f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(-3.558694658755804e-2f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(-2.7835574382285977e-1f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(-2.1525751313559993e-4f));
    h = _mm256_fmadd_ps(h, u, _mm256_set1_ps(5.641947996498716e-1f));
    const __m256 hu = _mm256_mul_ps(h, u);
    const __m256 hz = _mm256_fmadd_ps(hu, _mm256_fnmadd_ps(z, u, one), hu);  // h / z: u's rounding corrected
    F = _mm256_blendv_ps(f, hz, far);
  }
  // exp(-z^2), z^2 = a^2 / 2 = hi + lo exactly
  const __m256 sq = _mm256_mul_ps(a, a);
  const __m256 sq_lo = _mm256_fmsub_ps(a, a, sq);
  const Reduced q = reduce_ln2(_mm256_mul_ps(sq, _mm256_set1_ps(-0.5f)));  // exact halving
  const __m256 r = _mm256_fnmadd_ps(sq_lo, half, q.r);
  const __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(r, r), expm1_tail_poly(r), r);
  const __m256 hfe = _mm256_mul_ps(_mm256_mul_ps(half, _mm256_fmadd_ps(F, p, F)), pow2n(q.n));  // 0.5 erfc(z)
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, hfe), hfe, neg);  // Phi(x)
  return _mm256_mul_ps(x, phi);
}

// gelu with the tanh approximation: 0.5 x (1 + tanh(t / 2)) = x sigmoid(t), t = 2c (x + 0.044715 x^3),
// a form without cancellation for negative x. e = exp(-|t|) is carried scaled by 2^32 so that
// x e / (1 + e) stays exact where e alone would be subnormal; t < -104 gives x * 0 (NaN for -inf).
inline __m256 gelu_tanh_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  const __m256 x2 = _mm256_mul_ps(x, x);
  const __m256 t = _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.5957691216057308f)),
                                 _mm256_fmadd_ps(x2, _mm256_set1_ps(0.044715f), one));
  const __m256 m = _mm256_or_ps(t, sign);  // -|t|
  const Reduced q = reduce_ln2(m, -104.0f);
  const __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(q.r, q.r), expm1_tail_poly(q.r), q.r);
  __m256 num = _mm256_mul_ps(_mm256_add_ps(p, one), pow2n(_mm256_add_ps(q.n, _mm256_set1_ps(32.0f))));  // e 2^32
  num = _mm256_andnot_ps(_mm256_cmp_ps(m, _mm256_set1_ps(-104.0f), _CMP_LT_OQ), num);
  const __m256 unscale = _mm256_set1_ps(2.3283064365386963e-10f);  // 2^-32
  const __m256 den = _mm256_fmadd_ps(num, unscale, one);           // 1 + e
  const __m256 neg = _mm256_mul_ps(_mm256_div_ps(_mm256_mul_ps(x, num), den), unscale);
  const __m256 pos = _mm256_div_ps(x, den);
  return _mm256_blendv_ps(pos, neg, _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_LT_OQ));
}

}  // namespace avx2
}  // namespace medconv
