// AVX2 DICOM pixel kernel: 8 elements a step as two halves of 4 doubles. The scalar tail and the
// width-1 (threshold) window go through the reference, whose bits these match exactly
// (same operations, same order, no FMA: see MEDCONV_NO_FUSE in dicom.h).
#include <immintrin.h>

#include "dicom.h"

namespace medconv {
namespace {

// 8 stored values as int32 lanes, widened with the dtype's signedness.   x: [n] of D
template <DicomDtype D>
inline __m256i load8(const void* x, int64_t i) {
  if constexpr (D == DicomDtype::i8) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const int8_t*>(x) + i)));
  } else if constexpr (D == DicomDtype::u8) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(x) + i)));
  } else if constexpr (D == DicomDtype::i16) {
    return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const int16_t*>(x) + i)));
  } else if constexpr (D == DicomDtype::u16) {
    return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(x) + i)));
  } else {  // i32, u32
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const int32_t*>(x) + i));
  }
}

// The 8 stored values at x[i..i+8) as doubles, low bits kept as in the reference.
template <DicomDtype D>
inline void load_double(const void* x, int64_t i, __m128i shift, __m256i mask, __m256d& lo, __m256d& hi) {
  if constexpr (D == DicomDtype::f32) {
    __m256 f = _mm256_loadu_ps(static_cast<const float*>(x) + i);
    lo = _mm256_cvtps_pd(_mm256_castps256_ps128(f));
    hi = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
  } else {
    __m256i v = load8<D>(x, i);
    constexpr bool is_signed = D == DicomDtype::i8 || D == DicomDtype::i16 || D == DicomDtype::i32;
    if constexpr (is_signed) {
      v = _mm256_sra_epi32(_mm256_sll_epi32(v, shift), shift);  // sign-extend the low bits
    } else {
      v = _mm256_and_si256(v, mask);
    }
    if constexpr (D == DicomDtype::u32) {  // u = (u ^ 2^31) as int32 + 2^31, exact in double
      const __m256i bias = _mm256_set1_epi32(static_cast<int32_t>(0x80000000u));
      const __m256d two31 = _mm256_set1_pd(2147483648.0);
      v = _mm256_xor_si256(v, bias);
      lo = _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(v)), two31);
      hi = _mm256_add_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(v, 1)), two31);
    } else {
      lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(v));
      hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(v, 1));
    }
  }
}

// y = 1 - clamp((m - low) / width_m1 + 0.5, 0, 1) or without the 1 -; max/min keep NaN (2nd operand).
inline __m128 window4(__m128 m, __m256d low, __m256d width_m1, bool invert) {
  const __m256d half = _mm256_set1_pd(0.5), zero = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0);
  __m256d w = _mm256_add_pd(_mm256_div_pd(_mm256_sub_pd(_mm256_cvtps_pd(m), low), width_m1), half);
  w = _mm256_min_pd(one, _mm256_max_pd(zero, w));
  if (invert) w = _mm256_sub_pd(one, w);
  return _mm256_cvtpd_ps(w);
}

template <DicomDtype D, bool Window>
void run(const void* x, float* y, int64_t begin, int64_t end, const DicomPixelOp& op) {
  const int width = D == DicomDtype::f32 ? 32
                    : (D == DicomDtype::i8 || D == DicomDtype::u8) ? 8
                    : (D == DicomDtype::i16 || D == DicomDtype::u16) ? 16 : 32;
  const int bits = (op.bits_stored <= 0 || op.bits_stored >= width) ? 32 : op.bits_stored;
  const __m128i shift = _mm_cvtsi32_si128(32 - bits);
  const __m256i mask = _mm256_set1_epi32(bits >= 32 ? -1 : static_cast<int32_t>((1u << bits) - 1u));
  const __m256d slope = _mm256_set1_pd(op.slope), intercept = _mm256_set1_pd(op.intercept);
  const __m256d low = _mm256_set1_pd(op.low), width_m1 = _mm256_set1_pd(op.width_m1);
  int64_t i = begin;
  for (; i + 8 <= end; i += 8) {
    // y[i] = float(double(x[i]) * slope + intercept), then the window in double
    __m256d lo, hi;
    load_double<D>(x, i, shift, mask, lo, hi);
    lo = _mm256_mul_pd(lo, slope);
    hi = _mm256_mul_pd(hi, slope);
    MEDCONV_NO_FUSE(lo);
    MEDCONV_NO_FUSE(hi);
    __m128 mlo = _mm256_cvtpd_ps(_mm256_add_pd(lo, intercept));
    __m128 mhi = _mm256_cvtpd_ps(_mm256_add_pd(hi, intercept));
    if constexpr (Window) {
      mlo = window4(mlo, low, width_m1, op.invert);
      mhi = window4(mhi, low, width_m1, op.invert);
    }
    _mm256_storeu_ps(y + i, _mm256_set_m128(mhi, mlo));
  }
  if (i < end) dicom_pixels_ref(D, x, y, i, end, op);
}

template <DicomDtype D>
void run_dtype(const void* x, float* y, int64_t begin, int64_t end, const DicomPixelOp& op) {
  if (op.window == DicomWindow::none) {
    run<D, false>(x, y, begin, end, op);
  } else {
    run<D, true>(x, y, begin, end, op);
  }
}

}  // namespace

void dicom_pixels_avx2(DicomDtype dtype, const void* x, float* y, int64_t begin, int64_t end,
                       const DicomPixelOp& op) {
  if (op.window == DicomWindow::threshold) return dicom_pixels_ref(dtype, x, y, begin, end, op);
  switch (dtype) {
    case DicomDtype::i8: return run_dtype<DicomDtype::i8>(x, y, begin, end, op);
    case DicomDtype::u8: return run_dtype<DicomDtype::u8>(x, y, begin, end, op);
    case DicomDtype::i16: return run_dtype<DicomDtype::i16>(x, y, begin, end, op);
    case DicomDtype::u16: return run_dtype<DicomDtype::u16>(x, y, begin, end, op);
    case DicomDtype::i32: return run_dtype<DicomDtype::i32>(x, y, begin, end, op);
    case DicomDtype::u32: return run_dtype<DicomDtype::u32>(x, y, begin, end, op);
    case DicomDtype::f32: return run_dtype<DicomDtype::f32>(x, y, begin, end, op);
  }
}

}  // namespace medconv
