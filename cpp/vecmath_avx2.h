// Vectorised float32 math for the AVX2+FMA kernels (include only from *_avx2.cpp files): lane
// helpers, and vecmath.h's functions on 8 lanes.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "vecmath.h"

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

// The 8-lane operations of vecmath.h's templates; a mask is a vector of all-ones or zero lanes.
struct Avx2Vec {
  using T = __m256;
  using M = __m256;
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T zero() { return _mm256_setzero_ps(); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static T fmsub(T a, T b, T c) { return _mm256_fmsub_ps(a, b, c); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }  // b where either is NaN
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T and_(T a, T b) { return _mm256_and_ps(a, b); }
  static T or_(T a, T b) { return _mm256_or_ps(a, b); }
  static T xor_(T a, T b) { return _mm256_xor_ps(a, b); }
  static T andnot(T a, T b) { return _mm256_andnot_ps(a, b); }  // ~a & b
  static T abs(T v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
  static T round_nearest(T v) { return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integer-valued n in [-127, 127]; n = -127 gives 0 (used to flush underflow)
  static T pow2n(T n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  // the float whose exponent field is e (integer-valued in [0, 254]): 2^(e - 127), 0 for e = 0
  static T exponent_field(T e) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtps_epi32(e), 23)); }
  static M lt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M gt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M eq(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static T select(M m, T if_set, T if_clear) { return _mm256_blendv_ps(if_clear, if_set, m); }
  static T zero_where(M m, T v) { return _mm256_andnot_ps(m, v); }
  static bool any(M m) { return _mm256_movemask_ps(m) != 0; }
};

// The 8-lane instances of vecmath.h (softmax_avx2.cpp and act_avx2.cpp call these names), with
// internal linkage as vecmath.h's templates.
namespace {
using vecmath::kExpm1Tail;
using vecmath::kExpm1TailTerms;
using vecmath::kLog2e;
using Reduced = vecmath::Reduced<Avx2Vec>;
inline Reduced reduce_ln2(__m256 y, __m256 lowest) { return vecmath::reduce_ln2<Avx2Vec>(y, lowest); }
inline Reduced reduce_ln2(__m256 y, float lowest = -88.0f) { return vecmath::reduce_ln2<Avx2Vec>(y, lowest); }
inline __m256 expm1_tail_poly(__m256 r) { return vecmath::expm1_tail_poly<Avx2Vec>(r); }
inline __m256 pow2n(__m256 n) { return Avx2Vec::pow2n(n); }
inline __m256 exp_nonpos(__m256 y) { return vecmath::exp_nonpos<Avx2Vec>(y); }
inline __m256 expm1_nonpos(__m256 y) { return vecmath::expm1_nonpos<Avx2Vec>(y); }
inline __m256 sigmoid_ps(__m256 t) { return vecmath::sigmoid<Avx2Vec>(t); }
inline __m256 tanh_ps(__m256 x) { return vecmath::tanh<Avx2Vec>(x); }
inline __m256 gelu_ps(__m256 x) { return vecmath::gelu<Avx2Vec>(x); }
inline __m256 gelu_tanh_ps(__m256 x) { return vecmath::gelu_tanh<Avx2Vec>(x); }
}  // namespace

}  // namespace avx2
}  // namespace medconv
