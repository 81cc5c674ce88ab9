// The fused DICOM pixel kernel: stored integers -> float32 modality units, optionally
// windowed to [0, 1] and inverted, in one pass. One signature for every ISA variant.
//
// Per element, in this order (each step rounds exactly as written, so every variant and every
// thread split gives the same bits as the numpy expression in tests/test_dicom_kernel.py):
//   s = stored value, keeping only the low `bits_stored` bits (sign-extended for signed dtypes)
//   m = float32(double(s) * slope + intercept)           // a double multiply, then a double add
//   no window:  y = m
//   window:     y = clamp((double(m) - low) / width_m1 + 0.5, 0, 1)   // DICOM linear VOI, [0, 1]
//   threshold:  y = double(m) > low ? 1 : 0                          // window width 1
//   invert:     y = 1 - y                                            // MONOCHROME1 display
//   y is rounded to float32 once at the end.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace medconv {

enum class DicomDtype : int { i8 = 0, u8, i16, u16, i32, u32, f32 };

enum class DicomWindow : int { none = 0, linear = 1, threshold = 2 };

struct DicomPixelOp {
  int bits_stored = 0;     // 0 or the container's width: values as stored; else 1..31 low bits kept
  double slope = 1.0;      // (0028,1053) Rescale Slope
  double intercept = 0.0;  // (0028,1052) Rescale Intercept
  DicomWindow window = DicomWindow::none;
  double low = 0.0;        // window centre - 0.5
  double width_m1 = 1.0;   // window width - 1  (> 0 for linear, 0 for threshold)
  bool invert = false;     // y = 1 - y after the window
};

// y[i] = op(x[i]) for i in [begin, end).    x: [n] of `dtype`, y: [n] float32 (may alias x for f32)
using DicomPixelFn = void (*)(DicomDtype dtype, const void* x, float* y, int64_t begin, int64_t end,
                              const DicomPixelOp& op);

void dicom_pixels_ref(DicomDtype dtype, const void* x, float* y, int64_t begin, int64_t end,
                      const DicomPixelOp& op);
#if defined(MEDCONV_X86)
void dicom_pixels_avx2(DicomDtype dtype, const void* x, float* y, int64_t begin, int64_t end,
                       const DicomPixelOp& op);
#endif

// Variants that this CPU can run, fastest first; "scalar" is always last.
std::vector<std::string> dicom_pixel_variants();
// "auto" follows medconv's active ISA (dispatch.h: MEDCONV_ISA=scalar forces the reference).
// Returns nullptr for a variant that is not compiled in or that this CPU cannot run.
DicomPixelFn dicom_pixel_kernel(const std::string& isa);
// The variant that "auto" picks now.
std::string dicom_pixel_auto_isa();

// Runs fn over [0, n) on medconv's pool; the result does not depend on the split.
void dicom_pixels(DicomPixelFn fn, DicomDtype dtype, const void* x, float* y, int64_t n,
                  const DicomPixelOp& op);

}  // namespace medconv

// Keeps `a * b + c` as a rounded product and a rounded sum: the empty asm hides the product from
// the optimiser, so it cannot be fused into an FMA (GCC fuses even intrinsics under -mfma).
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MEDCONV_NO_FUSE(v) __asm__("" : "+x"(v))
#elif defined(__GNUC__) && defined(__aarch64__)
#define MEDCONV_NO_FUSE(v) __asm__("" : "+w"(v))
#else
#define MEDCONV_NO_FUSE(v) ((void)0)
#endif
