// What every pybind11 glue file needs: dtype and layout checks on kernel arguments (their
// failures become ValueError), raw pointers, and a call per dtype.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <stdexcept>
#include <string>

namespace medconv {
namespace bind {

namespace py = pybind11;

using Int3 = std::array<int64_t, 3>;

enum class DType { f32, f64 };

inline DType dtype_of(const py::array& a, const char* name) {
  if (a.dtype().is(py::dtype::of<float>())) return DType::f32;
  if (a.dtype().is(py::dtype::of<double>())) return DType::f64;
  throw std::invalid_argument(std::string(name) + " must be float32 or float64, got " +
                              std::string(py::str(a.dtype())));
}

inline void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

// A kernel argument: C-contiguous, of dtype dt, with ndim dims (-1: any), writeable if an output.
inline void check_array(const py::array& a, const char* name, DType dt, int ndim, bool output = false) {
  require(dtype_of(a, name) == dt, std::string(name) + " has a different dtype from the other arrays");
  if (ndim >= 0) require(a.ndim() == ndim, std::string(name) + " must have " + std::to_string(ndim) + " dims");
  require((a.flags() & py::array::c_style) != 0, std::string(name) + " must be C-contiguous");
  if (output) require(a.writeable(), std::string(name) + " must be writeable");
}

// An optional argument: None gives a null pointer.
struct Optional {
  py::array a;
  bool present = false;
  explicit operator bool() const { return present; }
};

inline Optional optional_array(const py::object& o, const char* name, DType dt, int64_t size, bool output = false) {
  Optional r;
  if (o.is_none()) return r;
  r.a = o.cast<py::array>();
  r.present = true;
  check_array(r.a, name, dt, -1, output);
  require(r.a.size() == size, std::string(name) + " must have " + std::to_string(size) + " elements");
  return r;
}

template <class T> T* data(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <class T> const T* cdata(const py::array& a) { return static_cast<const T*>(a.data()); }
template <class T> const T* cdata_or_null(const Optional& o) { return o.present ? cdata<T>(o.a) : nullptr; }
template <class T> T* data_or_null(Optional& o) { return o.present ? data<T>(o.a) : nullptr; }

template <class F>
void with_dtype(DType dt, F&& f) {
  if (dt == DType::f32) f(float{});
  else f(double{});
}

}  // namespace bind
}  // namespace medconv
