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
