// Force-included (-include) into the AVX-512 kernel files for tests/native/isa_check.cpp on a CPU
// without AVX-512: SIMDe's portable AVX-512 intrinsics under their Intel names (built from AVX2
// where it can), plus the masked loads and stores that SIMDe 0.7 lacks. Semantics, not speed:
// this runs the kernels' index arithmetic, tails and masks; the instruction encodings themselves
// are checked only by compiling the files with the real flags.
#pragma once
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

// r[i] = mask bit i ? p[i] : 0, reading only the selected lanes (as the instruction: no fault past them)
static inline simde__m512 isa_check_maskz_loadu_ps(simde__mmask16 k, const void* p) {
  simde__m512_private r;
  const float* f = static_cast<const float*>(p);
  for (int i = 0; i < 16; ++i) r.f32[i] = (k >> i) & 1 ? f[i] : 0.0f;
  return simde__m512_from_private(r);
}

// p[i] = v[i] where mask bit i is set; other lanes of memory untouched
static inline void isa_check_mask_storeu_ps(void* p, simde__mmask16 k, simde__m512 v) {
  const simde__m512_private a = simde__m512_to_private(v);
  float* f = static_cast<float*>(p);
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) f[i] = a.f32[i];
}

#define _mm512_maskz_loadu_ps(k, p) isa_check_maskz_loadu_ps((k), (p))
#define _mm512_mask_storeu_ps(p, k, v) isa_check_mask_storeu_ps((p), (k), (v))

// r[i] = mask bit i ? nearest integer to v[i] (ties to even, as the default rounding mode) : 0
static inline simde__m512i isa_check_maskz_cvtps_epi32(simde__mmask16 k, simde__m512 v) {
  const simde__m512_private a = simde__m512_to_private(v);
  simde__m512i_private r;
  for (int i = 0; i < 16; ++i) r.i32[i] = (k >> i) & 1 ? static_cast<int32_t>(__builtin_nearbyintf(a.f32[i])) : 0;
  return simde__m512i_from_private(r);
}

// r[i] = mask bit i ? v[i] << n : 0 (0 for n > 31)
static inline simde__m512i isa_check_maskz_slli_epi32(simde__mmask16 k, simde__m512i v, unsigned n) {
  const simde__m512i_private a = simde__m512i_to_private(v);
  simde__m512i_private r;
  for (int i = 0; i < 16; ++i) r.u32[i] = (k >> i) & 1 && n < 32 ? a.u32[i] << n : 0u;
  return simde__m512i_from_private(r);
}

// a streaming store is a store
static inline void isa_check_stream_ps(void* p, simde__m512 v) { simde_mm512_storeu_ps(p, v); }

#define _mm512_maskz_cvtps_epi32(k, v) isa_check_maskz_cvtps_epi32((k), (v))
#define _mm512_maskz_slli_epi32(k, v, n) isa_check_maskz_slli_epi32((k), (v), (n))
#define _mm512_stream_ps(p, v) isa_check_stream_ps((p), (v))

// r[i] = mask bit i ? v[i] (float to double / double to float, round to nearest) : 0
static inline simde__m512d isa_check_maskz_cvtps_pd(simde__mmask8 k, simde__m256 v) {
  const simde__m256_private a = simde__m256_to_private(v);
  simde__m512d_private r;
  for (int i = 0; i < 8; ++i) r.f64[i] = (k >> i) & 1 ? static_cast<double>(a.f32[i]) : 0.0;
  return simde__m512d_from_private(r);
}
static inline simde__m256 isa_check_maskz_cvtpd_ps(simde__mmask8 k, simde__m512d v) {
  const simde__m512d_private a = simde__m512d_to_private(v);
  simde__m256_private r;
  for (int i = 0; i < 8; ++i) r.f32[i] = (k >> i) & 1 ? static_cast<float>(a.f64[i]) : 0.0f;
  return simde__m256_from_private(r);
}

// r[i] = mask bit i ? v[i] >> n (logical; 0 for n > 63) : 0
static inline simde__m512i isa_check_maskz_srli_epi64(simde__mmask8 k, simde__m512i v, unsigned n) {
  const simde__m512i_private a = simde__m512i_to_private(v);
  simde__m512i_private r;
  for (int i = 0; i < 8; ++i) r.u64[i] = (k >> i) & 1 && n < 64 ? a.u64[i] >> n : 0u;
  return simde__m512i_from_private(r);
}

#define _mm512_maskz_cvtps_pd(k, v) isa_check_maskz_cvtps_pd((k), (v))
#define _mm512_maskz_cvtpd_ps(k, v) isa_check_maskz_cvtpd_ps((k), (v))
#define _mm512_maskz_srli_epi64(k, v, n) isa_check_maskz_srli_epi64((k), (v), (n))

// r[i] = mask bit i ? v[i] rounded to an integer as imm's rounding-control bits say (nearest even,
// down, up, toward zero; bit 2: the current mode) : 0. SIMDe 0.7 mis-decodes the directed modes
// (round down of -2.5 gave -2.5). Scaled forms (imm >> 4 != 0) are not used by the kernels.
static inline simde__m512 isa_check_maskz_roundscale_ps(simde__mmask16 k, simde__m512 v, int imm) {
  const simde__m512_private a = simde__m512_to_private(v);
  simde__m512_private r;
  for (int i = 0; i < 16; ++i) {
    const float x = a.f32[i];
    float y;
    if (imm & 4) y = __builtin_nearbyintf(x);
    else if ((imm & 3) == 1) y = __builtin_floorf(x);
    else if ((imm & 3) == 2) y = __builtin_ceilf(x);
    else if ((imm & 3) == 3) y = __builtin_truncf(x);
    else y = __builtin_nearbyintf(x);  // the default mode is round to nearest even
    r.f32[i] = (k >> i) & 1 ? y : 0.0f;
  }
  return simde__m512_from_private(r);
}

#define _mm512_maskz_roundscale_ps(k, v, imm) isa_check_maskz_roundscale_ps((k), (v), (imm))
