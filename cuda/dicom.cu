// The fused DICOM pixel kernel, as cpp/dicom.h describes it: stored integers -> float32 modality
// units, optionally windowed to [0, 1] and inverted, in one pass. Each step rounds exactly as the
// CPU kernel does (no FMA: __dmul_rn / __dadd_rn), so the GPU gives the CPU's bits.
//   s = stored value, keeping only the low `bits` bits (sign-extended for signed dtypes)
//   m = float32(double(s) * slope + intercept)
//   window 1 (linear):    y = clamp((double(m) - low) / width_m1 + 0.5, 0, 1)
//   window 2 (threshold): y = double(m) > low ? 1 : 0
//   invert:               y = 1 - y
#include "common.cuh"

template <class X, bool Signed, bool Float>
__device__ __forceinline__ double dicom_stored(X v, int shift, unsigned mask) {
  if (Float) return static_cast<double>(v);
  if (Signed) return static_cast<double>(static_cast<int>(static_cast<unsigned>(static_cast<int>(v)) << shift) >> shift);
  return static_cast<double>(static_cast<unsigned>(v) & mask);
}

// x: [n] stored values, y: [n] float32 (may alias x for float32)
template <class X, bool Signed, bool Float>
__device__ void dicom_rescale(const X* x, float* y, i64 n, int bits_stored, double slope, double intercept,
                              int window, double low, double width_m1, int invert) {
  const int width = Float ? 32 : static_cast<int>(8 * sizeof(X));
  const int bits = (bits_stored <= 0 || bits_stored >= width) ? 32 : bits_stored;
  const int shift = 32 - bits;
  const unsigned mask = bits >= 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u);
  MC_FOR(i, n) {
    const double p = __dmul_rn(dicom_stored<X, Signed, Float>(x[i], shift, mask), slope);
    const float m = static_cast<float>(__dadd_rn(p, intercept));
    if (window == 0) {
      y[i] = m;
      continue;
    }
    const double v = static_cast<double>(m);
    double w;
    if (window == 2) {
      w = v > low ? 1.0 : 0.0;
    } else {
      w = __dadd_rn(__ddiv_rn(v - low, width_m1), 0.5);
      w = w < 0.0 ? 0.0 : w;  // NaN passes through both
      w = w > 1.0 ? 1.0 : w;
    }
    if (invert) w = 1.0 - w;
    y[i] = static_cast<float>(w);
  }
}

#define MC_DICOM(X, S, SIGNED, FLOAT)                                                                  \
  MC_EXPORT(dicom_rescale_##S,                                                                         \
            (const X* x, float* y, i64 n, int bits_stored, double slope, double intercept, int window, \
             double low, double width_m1, int invert),                                                 \
            dicom_rescale<X, SIGNED, FLOAT>(x, y, n, bits_stored, slope, intercept, window, low, width_m1, invert))

MC_DICOM(signed char, i8, true, false)
MC_DICOM(unsigned char, u8, false, false)
MC_DICOM(short, i16, true, false)
MC_DICOM(unsigned short, u16, false, false)
MC_DICOM(int, i32, true, false)
MC_DICOM(unsigned int, u32, false, false)
MC_DICOM(float, f32, false, true)
