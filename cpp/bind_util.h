// What every pybind11 glue file needs: dtype and layout checks on kernel arguments (their
// failures become ValueError), raw pointers, and a call per dtype.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <stdexcept>
#include <string>

#include "kernels.h"
#include "parallel.h"

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

// Messages are literals, or built only on failure: these checks run on every call.
inline void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}

[[noreturn]] inline void fail(const char* name, const std::string& what) { throw std::invalid_argument(std::string(name) + what); }

// A kernel argument: C-contiguous, of dtype dt, with ndim dims (-1: any), writeable if an output.
inline void check_array(const py::array& a, const char* name, DType dt, int ndim, bool output = false) {
  if (dtype_of(a, name) != dt) fail(name, " has a different dtype from the other arrays");
  if (ndim >= 0 && a.ndim() != ndim) fail(name, " must have " + std::to_string(ndim) + " dims");
  if ((a.flags() & py::array::c_style) == 0) fail(name, " must be C-contiguous");
  if (output && !a.writeable()) fail(name, " must be writeable");
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
  if (r.a.size() != size) fail(name, " must have " + std::to_string(size) + " elements");
  return r;
}

// Around a kernel call: the GIL released, and the kernel kept on this thread when its work (about
// one unit per element read or written, or per multiply-add) is below kSerialWork, a few
// microseconds: splitting it over threads and waking them would cost more.
constexpr int64_t kSerialWork = int64_t{1} << 16;

class KernelCall {
 public:
  explicit KernelCall(int64_t work) : serial_(work < kSerialWork) {}

 private:
  SerialScope serial_;
  py::gil_scoped_release release_;
};

template <class T> T* data(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <class T> const T* cdata(const py::array& a) { return static_cast<const T*>(a.data()); }
template <class T> const T* cdata_or_null(const Optional& o) { return o.present ? cdata<T>(o.a) : nullptr; }
template <class T> T* data_or_null(Optional& o) { return o.present ? data<T>(o.a) : nullptr; }

template <class F>
void with_dtype(DType dt, F&& f) {
  if (dt == DType::f32) f(float{});
  else f(double{});
}

// ConvShape of the forward conv x [N, C, D, H, W] * w [OC, Cg, K...] -> y [N, OC, OD, OH, OW]
// (for the backward kernels: the same arrays' gradients). Every kernel clips its taps to
// [0, size), so any spatial sizes are memory safe.
inline ConvShape conv_shape(const py::array& x, const py::array& w, const py::array& y, Int3 stride, Int3 pad,
                            Int3 dilation, int64_t groups) {
  ConvShape s{};
  s.N = x.shape(0); s.C = x.shape(1); s.D = x.shape(2); s.H = x.shape(3); s.W = x.shape(4);
  s.OC = w.shape(0); s.KD = w.shape(2); s.KH = w.shape(3); s.KW = w.shape(4);
  s.OD = y.shape(2); s.OH = y.shape(3); s.OW = y.shape(4);
  s.groups = groups;
  for (int i = 0; i < 3; ++i) {
    s.stride[i] = stride[i]; s.pad[i] = pad[i]; s.dilation[i] = dilation[i];
    require(stride[i] >= 1 && dilation[i] >= 1 && pad[i] >= 0, "stride, dilation must be >= 1, padding >= 0");
  }
  require(groups >= 1 && s.C % groups == 0 && s.OC % groups == 0 && w.shape(1) * groups == s.C,
          "weight and groups do not match the input channels");
  require(y.shape(0) == s.N && y.shape(1) == s.OC, "the output's batch and channels do not match");
  return s;
}

// PoolShape of a window op x [planes, D, H, W] -> y [planes, OD, OH, OW].
inline PoolShape pool_shape(const py::array& x, const py::array& y, Int3 kernel, Int3 stride, Int3 pad,
                            Int3 dilation) {
  PoolShape s{};
  s.NC = x.shape(0); s.D = x.shape(1); s.H = x.shape(2); s.W = x.shape(3);
  s.OD = y.shape(1); s.OH = y.shape(2); s.OW = y.shape(3);
  require(y.shape(0) == s.NC, "input and output must have the same number of planes");
  for (int i = 0; i < 3; ++i) {
    s.kernel[i] = kernel[i]; s.stride[i] = stride[i]; s.pad[i] = pad[i]; s.dilation[i] = dilation[i];
    require(kernel[i] >= 1 && stride[i] >= 1 && dilation[i] >= 1 && pad[i] >= 0 && 2 * pad[i] <= kernel[i],
            "kernel_size, stride, dilation must be >= 1 and padding in [0, kernel_size / 2]");
  }
  const int64_t in[3] = {s.D, s.H, s.W}, o[3] = {s.OD, s.OH, s.OW};
  for (int i = 0; i < 3; ++i)  // every window starts inside the input or its leading padding
    require(o[i] == 0 || (o[i] - 1) * stride[i] < in[i] + pad[i], "output spatial size does not fit the input");
  return s;
}

// PoolShape of adaptive pooling x [planes, D, H, W] -> y [planes, OD, OH, OW] (no window arguments).
inline PoolShape adaptive_shape(const py::array& x, const py::array& y) {
  PoolShape s{};
  s.NC = x.shape(0); s.D = x.shape(1); s.H = x.shape(2); s.W = x.shape(3);
  s.OD = y.shape(1); s.OH = y.shape(2); s.OW = y.shape(3);
  require(y.shape(0) == s.NC, "input and output must have the same number of planes");
  require((s.OD > 0 && s.OH > 0 && s.OW > 0 && s.D > 0 && s.H > 0 && s.W > 0) || s.NC == 0,
          "output_size and the input's spatial dims must be positive");
  return s;
}

}  // namespace bind
}  // namespace medconv
