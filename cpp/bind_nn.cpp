// pybind11 glue for the backward and training kernels (filled in by the CNN-API work).
#include <pybind11/pybind11.h>

namespace medconv {
void register_nn(pybind11::module_& m) {}
}  // namespace medconv
