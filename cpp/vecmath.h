// Vectorised float32 math over any vector width: each function is a template over a lane type V
// (vecmath_avx2.h's Avx2Vec: 8 floats, vec_avx512.h's Avx512Vec: 16) that supplies the operations. Both
// widths run the same sequence of operations per lane, so they give the same bits.
// Polynomial coefficients are minimax fits (relative error) made in float64 against mpmath; each
// function keeps IEEE special values: NaN propagates, -inf and +inf give the limits.
//
// Internal linkage (anonymous namespace): an AVX-512 file's copy must never be merged at link time
// with the copy an AVX2 file compiled (see gemm_common.h).
#pragma once

namespace medconv {
namespace vecmath {

// (e^r - 1 - r) / r^2 on |r| <= ln(2)/2, relative error 3e-9: Horner from kExpm1Tail[0].
constexpr int kExpm1TailTerms = 6;
constexpr float kExpm1Tail[kExpm1TailTerms] = {1.9859230087604374e-4f, 1.3934499584138393e-3f, 8.333359844982624e-3f,
                                               4.166645556688309e-2f,  1.666666716337204e-1f,  0.5f};
// Cody-Waite reduction constants: n kLn2Hi is exact (9 bits).
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;

namespace {

template <class V>
inline typename V::T expm1_tail_poly(typename V::T r) {
  typename V::T p = V::set1(kExpm1Tail[0]);
  for (int c = 1; c < kExpm1TailTerms; ++c) p = V::fmadd(p, r, V::set1(kExpm1Tail[c]));
  return p;
}

// y = n ln2 + r with |r| <= ln(2)/2 (r exact up to one rounding); y is clamped to >= lowest first
// (NaN kept), so n >= -127 for the default -88.
template <class V>
struct Reduced {
  typename V::T r, n;
};
template <class V>
inline Reduced<V> reduce_ln2(typename V::T y, typename V::T lowest) {
  y = V::max(lowest, y);  // second operand wins for NaN: NaN kept
  const typename V::T n = V::round_nearest(V::mul(y, V::set1(kLog2e)));
  typename V::T r = V::fnmadd(n, V::set1(kLn2Hi), y);
  r = V::fnmadd(n, V::set1(kLn2Lo), r);
  return {r, n};
}
template <class V>
inline Reduced<V> reduce_ln2(typename V::T y, float lowest = -88.0f) {
  return reduce_ln2<V>(y, V::set1(lowest));
}

// e^r - 1 of a reduced argument
template <class V>
inline typename V::T expm1_reduced(typename V::T r) {
  return V::fmadd(V::mul(r, r), expm1_tail_poly<V>(r), r);
}

// exp(y) for y <= 0 (or NaN): error <= 1 ulp; y < -87.3 underflows to subnormals, then 0.
template <class V>
inline typename V::T exp_nonpos(typename V::T y) {
  const Reduced<V> q = reduce_ln2<V>(y);
  return V::mul(V::add(expm1_reduced<V>(q.r), V::set1(1.0f)), V::pow2n(q.n));
}

// expm1(y) for y <= 0 (or NaN): relative error <= ~1.5 ulp; -0 gives -0; y < -17.4 gives -1.
template <class V>
inline typename V::T expm1_nonpos(typename V::T y) {
  const Reduced<V> q = reduce_ln2<V>(y);
  const typename V::T p = expm1_reduced<V>(q.r);
  const typename V::T s = V::pow2n(q.n);
  // 2^n (e^r - 1) + (2^n - 1): one rounding; n = 0 gives p itself
  const typename V::T out = V::fmadd(s, p, V::sub(s, V::set1(1.0f)));
  return V::select(V::eq(y, V::zero()), y, out);  // keep -0
}

// elu(x) = x > 0 ? x : alpha * expm1(x)
template <class V>
inline typename V::T elu(typename V::T x, typename V::T alpha) {
  const typename V::T neg = V::mul(alpha, expm1_nonpos<V>(V::min(V::zero(), x)));  // min keeps a NaN x
  return V::select(V::gt(x, V::zero()), x, neg);
}

// sigmoid(t) = 1 / (1 + e^-t), from e = exp(-|t|) so nothing overflows: t >= 0 gives 1 / (1 + e),
// t < 0 gives e / (1 + e). NaN propagates, +-inf give 1 and 0.
template <class V>
inline typename V::T sigmoid(typename V::T t) {
  const typename V::T one = V::set1(1.0f);
  const typename V::T e = exp_nonpos<V>(V::or_(t, V::set1(-0.0f)));  // -|t|
  const typename V::T num = V::select(V::lt(t, V::zero()), e, one);
  return V::div(num, V::add(one, e));
}

// tanh(x) = sign(x) * -t / (t + 2) with t = expm1(-2|x|) in [-1, 0]: no cancellation anywhere.
template <class V>
inline typename V::T tanh(typename V::T x) {
  const typename V::T sign = V::set1(-0.0f);
  const typename V::T t = expm1_nonpos<V>(V::mul(V::or_(x, sign), V::set1(2.0f)));
  const typename V::T mag = V::div(V::xor_(t, sign), V::add(t, V::set1(2.0f)));
  return V::or_(V::andnot(sign, mag), V::and_(x, sign));
}

// gelu(x) = x * Phi(x) = 0.5 x erfc(-x / sqrt 2), relatively accurate for every x (2.9e-7 worst):
//   erfc(z) = F(z) exp(-z^2), z = |x| / sqrt 2, with z^2 = x^2 / 2 kept as hi + lo
//   (F: a degree-12 polynomial in z - 1 for z < 2, H(u) / z with u = 1/z beyond);
//   x < 0: x * (0.5 erfc(z)),  x >= 0: x * (1 - 0.5 erfc(z)), which never cancels (Phi >= 1/2).
// gelu(-inf) is NaN (as 0.5 * -inf * (1 + erf(-inf)) in the reference), gelu(+inf) = +inf.
template <class V>
inline typename V::T gelu(typename V::T x) {
  using T = typename V::T;
  static constexpr float kF[] = {1.9195640561520122e-05f, -6.326565198833123e-05f, 0.00012970168609172106f,
                                 -0.00035833928268402815f, 0.0010510215070098639f, -0.0027833362109959126f,
                                 0.0069707240909338f, -0.016657749190926552f, 0.03757202625274658f,
                                 -0.07922746986150742f, 0.15437158942222595f, -0.2732119858264923f,
                                 0.42758357524871826f};
  static constexpr float kH[] = {-3.171813184057647e-1f, 5.756179751182496e-1f, -6.253057390167074e-2f,
                                 -6.567107699836761e-1f, 6.23723359406028e-1f,  -3.558694658755804e-2f,
                                 -2.7835574382285977e-1f, -2.1525751313559993e-4f, 5.641947996498716e-1f};
  const T one = V::set1(1.0f), half = V::set1(0.5f);
  const T a = V::min(V::abs(x), V::set1(20.0f));  // finite; erfc(20 / sqrt 2) = 0 anyway
  // F(z) = erfc(z) e^{z^2} on [0, 2): polynomial in z - 1
  const T z = V::mul(a, V::set1(0.70710678118654752f));
  const T v = V::sub(z, one);
  T f = V::set1(kF[0]);
  for (int c = 1; c < 13; ++c) f = V::fmadd(f, v, V::set1(kF[c]));
  // z >= 2 (|x| >= 2.83, a few lanes in a hundred for unit-scale data): H(1/z) / z, computed only
  // when some lane needs it (the division is the dearest instruction here)
  const typename V::M far = V::ge(z, V::set1(2.0f));
  T F = f;
  if (V::any(far)) {
    const T u = V::div(one, V::max(z, one));
    T h = V::set1(kH[0]);
    for (int c = 1; c < 9; ++c) h = V::fmadd(h, u, V::set1(kH[c]));
    const T hu = V::mul(h, u);
    const T hz = V::fmadd(hu, V::fnmadd(z, u, one), hu);  // h / z: u's rounding corrected
    F = V::select(far, hz, f);
  }
  // exp(-z^2), z^2 = a^2 / 2 = hi + lo exactly
  const T sq = V::mul(a, a);
  const T sq_lo = V::fmsub(a, a, sq);
  const Reduced<V> q = reduce_ln2<V>(V::mul(sq, V::set1(-0.5f)));  // exact halving
  const T r = V::fnmadd(sq_lo, half, q.r);
  const T p = expm1_reduced<V>(r);
  const T hfe = V::mul(V::mul(half, V::fmadd(F, p, F)), V::pow2n(q.n));  // 0.5 erfc(z)
  const T phi = V::select(V::lt(x, V::zero()), hfe, V::sub(one, hfe));  // Phi(x)
  return V::mul(x, phi);
}

// gelu with the tanh approximation: 0.5 x (1 + tanh(t / 2)) = x sigmoid(t), t = 2c (x + 0.044715 x^3),
// a form without cancellation for negative x. e = exp(-|t|) is carried scaled by 2^32 so that
// x e / (1 + e) stays exact where e alone would be subnormal; t < -104 gives x * 0 (NaN for -inf).
template <class V>
inline typename V::T gelu_tanh(typename V::T x) {
  using T = typename V::T;
  const T one = V::set1(1.0f), sign = V::set1(-0.0f);
  const T x2 = V::mul(x, x);
  const T t = V::mul(V::mul(x, V::set1(1.5957691216057308f)), V::fmadd(x2, V::set1(0.044715f), one));
  const T m = V::or_(t, sign);  // -|t|
  const Reduced<V> q = reduce_ln2<V>(m, -104.0f);
  const T p = expm1_reduced<V>(q.r);
  T num = V::mul(V::add(p, one), V::pow2n(V::add(q.n, V::set1(32.0f))));  // e 2^32
  num = V::zero_where(V::lt(m, V::set1(-104.0f)), num);
  const T unscale = V::set1(2.3283064365386963e-10f);  // 2^-32
  const T den = V::fmadd(num, unscale, one);            // 1 + e
  const T neg = V::mul(V::div(V::mul(x, num), den), unscale);
  const T pos = V::div(x, den);
  return V::select(V::lt(t, V::zero()), neg, pos);
}

// Softmax's exps (softmax_avx2.cpp, softmax_avx512.cpp).
//
// exp(x - m) for x <= m (m the row's or column's max): the difference is split exactly into hi + lo
// (TwoSum) and lo is added to the reduced argument, so large |x - m| lose no accuracy.
template <class V>
inline typename V::T exp_diff(typename V::T x, typename V::T m) {
  using T = typename V::T;
  const T hi = V::sub(x, m);
  const T bb = V::sub(hi, x);
  T lo = V::sub(V::sub(x, V::sub(hi, bb)), V::add(m, bb));
  lo = V::select(V::eq(lo, lo), lo, V::zero());  // hi = -inf gives lo = NaN: drop it
  const Reduced<V> q = reduce_ln2<V>(hi);
  const T r = V::add(q.r, lo);
  const T p = V::fmadd(V::mul(r, r), expm1_tail_poly<V>(r), r);
  return V::mul(V::add(p, V::set1(1.0f)), V::pow2n(q.n));
}

// exp(x) 2^-k for x >= lowest (lower x as lowest, NaN kept), with k an integer near max(x) log2(e):
// x is reduced on its own, so no subtraction x - m is rounded and no TwoSum is needed; a factor 2^-k
// common to a row cancels in the softmax. Exact reduction needs |x| <= ~2^14, so rows with a max
// over kScaledMaxAbs (softmax_common.h) keep exp_diff. Results under 2^-126 flush to zero.
// The polynomial runs over K vectors in lockstep, each step over all K before the next: one vector's
// chain of dependent operations leaves the FP scheduler full of waiting ones (1.3x slower per vector
// than K = 4 on AVX2).
// k_biased = k - 127: the exponent field of 2^(n - k) is max(n - k_biased, 0), which also flushes
// 2^-127 and below to zero (a NaN n gives 0, p NaN).
template <class V, int K>
inline void exp_scaled(typename V::T (&v)[K], const typename V::T (&lowest)[K], const typename V::T (&k_biased)[K]) {
  Reduced<V> q[K];
  typename V::T p[K];
  for (int k = 0; k < K; ++k) q[k] = reduce_ln2<V>(v[k], lowest[k]);
  for (int k = 0; k < K; ++k) p[k] = V::set1(kExpm1Tail[0]);
  for (int c = 1; c < kExpm1TailTerms; ++c)
    for (int k = 0; k < K; ++k) p[k] = V::fmadd(p[k], q[k].r, V::set1(kExpm1Tail[c]));
  for (int k = 0; k < K; ++k) {
    p[k] = V::fmadd(V::mul(q[k].r, q[k].r), p[k], q[k].r);  // e^r - 1
    const typename V::T scale = V::exponent_field(V::max(V::sub(q[k].n, k_biased[k]), V::zero()));
    v[k] = V::fmadd(p[k], scale, scale);  // (e^r - 1 + 1) 2^(n - k): scale is a power of 2 or 0
  }
}

// The same with one lowest and k_biased for all K vectors (a row's).
template <class V, int K>
inline void exp_scaled(typename V::T (&v)[K], typename V::T lowest, typename V::T k_biased) {
  typename V::T low[K], kb[K];
  for (int k = 0; k < K; ++k) low[k] = lowest, kb[k] = k_biased;
  exp_scaled<V>(v, low, kb);
}

}  // namespace
}  // namespace vecmath
}  // namespace medconv
