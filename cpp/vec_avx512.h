// The 16-lane operations of vecmath.h's templates, AVX-512F (+DQ for the bitwise float operations);
// a mask is a __mmask16. Include only from *_avx512.cpp files.
#pragma once
#include <immintrin.h>

#include "vecmath.h"

namespace medconv {
namespace avx512 {

// The lanes [0, n) of a 16-lane vector, n clamped to [0, 16].
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1);
}

struct Avx512Vec {
  using T = __m512;
  using M = __mmask16;
  static T set1(float v) { return _mm512_set1_ps(v); }
  static T zero() { return _mm512_setzero_ps(); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static T fmsub(T a, T b, T c) { return _mm512_fmsub_ps(a, b, c); }
  // b where either is NaN, as AVX2's. Here, in round_nearest and in pow2n the all-lanes masked
  // forms: GCC 12 warns about the unmasked ones' undefined source.
  static T max(T a, T b) { return _mm512_mask_max_ps(a, 0xFFFF, a, b); }
  static T min(T a, T b) { return _mm512_mask_min_ps(a, 0xFFFF, a, b); }
  static T and_(T a, T b) { return _mm512_and_ps(a, b); }
  static T or_(T a, T b) { return _mm512_or_ps(a, b); }
  static T xor_(T a, T b) { return _mm512_xor_ps(a, b); }
  static T andnot(T a, T b) { return _mm512_andnot_ps(a, b); }  // ~a & b
  static T abs(T v) { return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), v); }
  static T round_nearest(T v) {
    return _mm512_maskz_roundscale_ps(0xFFFF, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // 2^n for integer-valued n in [-127, 127]; n = -127 gives 0 (used to flush underflow)
  static T pow2n(T n) {
    const __m512i e = _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xFFFF, n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, e, 23));
  }
  // the float whose exponent field is e (integer-valued in [0, 254]): 2^(e - 127), 0 for e = 0
  static T exponent_field(T e) {
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtps_epi32(0xFFFF, e), 23));
  }
  static M lt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M eq(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static T select(M m, T if_set, T if_clear) { return _mm512_mask_blend_ps(m, if_clear, if_set); }
  static T zero_where(M m, T v) { return _mm512_maskz_mov_ps(static_cast<M>(~m), v); }
  static bool any(M m) { return m != 0; }
};

}  // namespace avx512
}  // namespace medconv
