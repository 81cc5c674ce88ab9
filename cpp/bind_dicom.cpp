// pybind11 glue for the DICOM pixel kernels (filled in by the DICOM work).
#include <pybind11/pybind11.h>

namespace medconv {
void register_dicom(pybind11::module_& m) {}
}  // namespace medconv
