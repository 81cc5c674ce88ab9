// Reference DICOM pixel kernel (plain loops, any CPU) and the choice of variant at run time.
#include <type_traits>

#include "dicom.h"
#include "dispatch.h"
#include "parallel.h"

namespace medconv {
namespace {

// The stored value, keeping the low `bits` bits: sign-extended for signed, masked for unsigned.
template <class T>
inline double stored(T x, int shift, uint32_t mask) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<double>(x);
  } else if constexpr (std::is_signed_v<T>) {
    int32_t v = static_cast<int32_t>(x);
    return static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(v) << shift) >> shift);
  } else {
    return static_cast<double>(static_cast<uint32_t>(x) & mask);
  }
}

template <class T>
void run(const T* x, float* y, int64_t begin, int64_t end, const DicomPixelOp& op) {
  const int width = std::is_floating_point_v<T> ? 32 : static_cast<int>(8 * sizeof(T));
  const int bits = (op.bits_stored <= 0 || op.bits_stored >= width) ? 32 : op.bits_stored;
  const int shift = 32 - bits;
  const uint32_t mask = bits >= 32 ? 0xFFFFFFFFu : ((1u << bits) - 1u);
  for (int64_t i = begin; i < end; ++i) {
    double p = stored(x[i], shift, mask) * op.slope;
    MEDCONV_NO_FUSE(p);
    float m = static_cast<float>(p + op.intercept);
    if (op.window == DicomWindow::none) {
      y[i] = m;
      continue;
    }
    double v = static_cast<double>(m), w;
    if (op.window == DicomWindow::threshold) {
      w = v > op.low ? 1.0 : 0.0;
    } else {
      w = (v - op.low) / op.width_m1 + 0.5;
      w = w < 0.0 ? 0.0 : w;  // NaN passes through both
      w = w > 1.0 ? 1.0 : w;
    }
    if (op.invert) w = 1.0 - w;
    y[i] = static_cast<float>(w);
  }
}

bool cpu_has_avx2() {
#if defined(MEDCONV_X86) && defined(__GNUC__)
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

}  // namespace

void dicom_pixels_ref(DicomDtype dtype, const void* x, float* y, int64_t begin, int64_t end,
                      const DicomPixelOp& op) {
  switch (dtype) {
    case DicomDtype::i8: return run(static_cast<const int8_t*>(x), y, begin, end, op);
    case DicomDtype::u8: return run(static_cast<const uint8_t*>(x), y, begin, end, op);
    case DicomDtype::i16: return run(static_cast<const int16_t*>(x), y, begin, end, op);
    case DicomDtype::u16: return run(static_cast<const uint16_t*>(x), y, begin, end, op);
    case DicomDtype::i32: return run(static_cast<const int32_t*>(x), y, begin, end, op);
    case DicomDtype::u32: return run(static_cast<const uint32_t*>(x), y, begin, end, op);
    case DicomDtype::f32: return run(static_cast<const float*>(x), y, begin, end, op);
  }
}

std::vector<std::string> dicom_pixel_variants() {
  std::vector<std::string> out;
#if defined(MEDCONV_X86)
  if (cpu_has_avx2()) out.push_back("avx2");
#endif
  out.push_back("scalar");
  return out;
}

DicomPixelFn dicom_pixel_kernel(const std::string& isa) {
  if (isa == "auto") return dicom_pixel_kernel(dicom_pixel_auto_isa());
  if (isa == "scalar") return dicom_pixels_ref;
#if defined(MEDCONV_X86)
  if (isa == "avx2" && cpu_has_avx2()) return dicom_pixels_avx2;
#endif
  return nullptr;
}

std::string dicom_pixel_auto_isa() {
  // Follows medconv's one ISA choice (MEDCONV_ISA, select_isa): the scalar table means the
  // reference here too; any x86 table at or above AVX2 means the AVX2 variant.
  const Isa isa = kernels().isa;
  if ((isa == Isa::avx2 || isa == Isa::avx512) && cpu_has_avx2()) return "avx2";
  return "scalar";
}

void dicom_pixels(DicomPixelFn fn, DicomDtype dtype, const void* x, float* y, int64_t n,
                  const DicomPixelOp& op) {
  parallel_for(n, int64_t{1} << 16,
               [&](int64_t begin, int64_t end) { fn(dtype, x, y, begin, end, op); });
}

}  // namespace medconv
