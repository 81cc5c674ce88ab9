// pybind11 glue for the DICOM pixel kernel (cpp/dicom.h). Python (medconv/dicom/pixels.py)
// validates and makes any copy visibly; this only checks what a wrong call would crash on.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "dicom.h"

namespace py = pybind11;

namespace medconv {
namespace {

DicomDtype dtype_of(const py::array& x) {
  const py::dtype dt = x.dtype();
  // dtype::equal is false for the other byte order, so '>i2' on a little-endian host falls through.
  if (dt.equal(py::dtype::of<int8_t>())) return DicomDtype::i8;
  if (dt.equal(py::dtype::of<uint8_t>())) return DicomDtype::u8;
  if (dt.equal(py::dtype::of<int16_t>())) return DicomDtype::i16;
  if (dt.equal(py::dtype::of<uint16_t>())) return DicomDtype::u16;
  if (dt.equal(py::dtype::of<int32_t>())) return DicomDtype::i32;
  if (dt.equal(py::dtype::of<uint32_t>())) return DicomDtype::u32;
  if (dt.equal(py::dtype::of<float>())) return DicomDtype::f32;
  throw std::invalid_argument(
      "dicom_rescale: x must be int8, uint8, int16, uint16, int32, uint32 or float32 in native "
      "byte order, got " + std::string(py::str(dt)));
}

void rescale(const py::array& x, py::array& out, double slope, double intercept, int bits_stored,
             std::optional<double> center, std::optional<double> width, bool invert,
             const std::string& isa) {
  const DicomDtype dtype = dtype_of(x);
  if (!out.dtype().equal(py::dtype::of<float>())) {
    throw std::invalid_argument("dicom_rescale: out must be float32, got " + std::string(py::str(out.dtype())));
  }
  if (!(x.flags() & py::array::c_style) || !(out.flags() & py::array::c_style)) {
    throw std::invalid_argument("dicom_rescale: x and out must be C-contiguous");
  }
  if (!(x.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) ||
      !(out.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
    throw std::invalid_argument("dicom_rescale: x and out must be aligned");
  }
  if (!out.writeable()) throw std::invalid_argument("dicom_rescale: out is read-only");
  if (x.size() != out.size()) {
    throw std::invalid_argument("dicom_rescale: x has " + std::to_string(x.size()) +
                                " elements, out has " + std::to_string(out.size()));
  }
  if (bits_stored < 0 || bits_stored > 32 || (dtype == DicomDtype::f32 && bits_stored != 0)) {
    throw std::invalid_argument("dicom_rescale: bits_stored must be 0..32 (0 for float32), got " +
                                std::to_string(bits_stored));
  }
  DicomPixelOp op;
  op.bits_stored = bits_stored;
  op.slope = slope;
  op.intercept = intercept;
  op.invert = invert;
  if (center.has_value() != width.has_value()) {
    throw std::invalid_argument("dicom_rescale: give both center and width, or neither");
  }
  if (center) {
    if (!(*width >= 1.0)) {
      throw std::invalid_argument("dicom_rescale: window width must be >= 1, got " + std::to_string(*width));
    }
    op.window = *width == 1.0 ? DicomWindow::threshold : DicomWindow::linear;
    op.low = *center - 0.5;
    op.width_m1 = *width - 1.0;
  } else if (invert) {
    throw std::invalid_argument("dicom_rescale: invert needs a window (MONOCHROME1 is inverted for display only)");
  }
  DicomPixelFn fn = dicom_pixel_kernel(isa);
  if (fn == nullptr) {
    throw std::invalid_argument("dicom_rescale: isa '" + isa + "' is not available here; available: auto, " +
                                std::string(py::str(py::cast(dicom_pixel_variants()))));
  }
  const void* src = x.data();
  float* dst = static_cast<float*>(out.mutable_data());
  const int64_t n = static_cast<int64_t>(x.size());
  py::gil_scoped_release release;
  dicom_pixels(fn, dtype, src, dst, n, op);
}

}  // namespace

void register_dicom(py::module_& m) {
  m.def("dicom_rescale", &rescale, py::arg("x"), py::arg("out"), py::kw_only(),
        py::arg("slope") = 1.0, py::arg("intercept") = 0.0, py::arg("bits_stored") = 0,
        py::arg("center") = py::none(), py::arg("width") = py::none(), py::arg("invert") = false,
        py::arg("isa") = "auto",
        "out[...] = float32(x * slope + intercept) in float64, optionally windowed to [0, 1]\n"
        "(DICOM linear VOI) and inverted, in one multi-threaded pass with the GIL released.\n"
        "x: C-contiguous int8/uint8/int16/uint16/int32/uint32/float32; out: float32, same size.");
  m.def("dicom_isa", &dicom_pixel_auto_isa, "The DICOM pixel kernel variant in use (follows medconv's ISA; MEDCONV_ISA=scalar forces 'scalar').");
  m.def("dicom_isas", &dicom_pixel_variants, "DICOM pixel kernel variants this CPU can run, fastest first.");
}

}  // namespace medconv
