// pybind11 glue only: unpack arrays, check what Python promised, release the GIL, call the kernel.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/numpy.h>

#include "bind_util.h"

#include <array>
#include <stdexcept>
#include <string>

#include "dispatch.h"
#include "filter_cache.h"
#include "memory.h"
#include "conv_plan.h"
#include "parallel.h"

namespace py = pybind11;

namespace medconv {
void register_dicom(py::module_& m);
void register_nn(py::module_& m);

namespace {

using namespace bind;

void conv_forward(const py::array& x, const py::array& w, const py::object& bias, py::array y,
                  Int3 stride, Int3 pad, Int3 dilation, int64_t groups, int activation) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 5);
  check_array(w, "weight", dt, 5);
  check_array(y, "out", dt, 5, true);
  ConvShape s = conv_shape(x, w, y, stride, pad, dilation, groups);
  // Every tap is bounds-checked by the kernels, so any output size is memory-safe; Python
  // computes the right one. Here only its last window must start within the padded input.
  const int64_t in[3] = {s.D, s.H, s.W}, o[3] = {s.OD, s.OH, s.OW};
  for (int i = 0; i < 3; ++i)
    require(o[i] >= 0 && (o[i] - 1) * stride[i] <= in[i] + 2 * pad[i], "out spatial size does not fit the input");
  py::array b;
  if (!bias.is_none()) {
    b = bias.cast<py::array>();
    check_array(b, "bias", dt, 1);
    require(b.shape(0) == s.OC, "bias must have out_channels elements");
  }
  require(activation == 0 || activation == 1, "activation must be none (0) or relu (1)");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* bp = bias.is_none() ? nullptr : cdata<T>(b);
    const T* xp = cdata<T>(x); const T* wp = cdata<T>(w); T* yp = data<T>(y);
    const KernelCall call(y.size() * (w.size() / std::max<py::ssize_t>(1, w.shape(0))));
    kernels_for<T>().conv_forward(s, xp, wp, bp, yp, static_cast<Activation>(activation));
  });
}

void max_pool(const py::array& x, py::array y, const py::object& indices, Int3 kernel, Int3 stride, Int3 pad,
              Int3 dilation) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 4);
  check_array(y, "out", dt, 4, true);
  PoolShape s = pool_shape(x, y, kernel, stride, pad, dilation);
  int64_t* ip = nullptr;
  py::array_t<int64_t> idx;
  if (!indices.is_none()) {
    idx = indices.cast<py::array_t<int64_t>>();
    require(idx.ndim() == 4 && (idx.flags() & py::array::c_style) && idx.writeable() &&
                idx.dtype().is(py::dtype::of<int64_t>()),
            "indices must be a writeable C-contiguous int64 array");
    for (int i = 0; i < 4; ++i) require(idx.shape(i) == y.shape(i), "indices must have the shape of out");
    ip = idx.mutable_data();
  }
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().max_pool(s, xp, yp, ip);
  });
}

void avg_pool(const py::array& x, py::array y, Int3 kernel, Int3 stride, Int3 pad, bool count_include_pad,
              int64_t divisor) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 4);
  check_array(y, "out", dt, 4, true);
  PoolShape s = pool_shape(x, y, kernel, stride, pad, Int3{1, 1, 1});
  require(divisor >= 0, "divisor_override must be positive");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().avg_pool(s, xp, yp, count_include_pad, divisor);
  });
}

void adaptive_avg_pool(const py::array& x, py::array y) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 4);
  check_array(y, "out", dt, 4, true);
  PoolShape s = adaptive_shape(x, y);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().adaptive_avg_pool(s, xp, yp);
  });
}

void pad(const py::array& x, py::array y, Int3 before, Int3 after, int mode, double value) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 4);
  check_array(y, "out", dt, 4, true);
  require(mode >= 0 && mode <= 3, "mode must be constant, reflect, replicate or circular");
  PadShape s{};
  s.outer = x.shape(0); s.D = x.shape(1); s.H = x.shape(2); s.W = x.shape(3);
  const int64_t in[3] = {s.D, s.H, s.W};
  for (int i = 0; i < 3; ++i) {
    s.before[i] = before[i]; s.after[i] = after[i];
    require(y.shape(i + 1) == in[i] + before[i] + after[i] && y.shape(i + 1) >= 0, "out has the wrong shape");
    const PadMode m = static_cast<PadMode>(mode);
    if (m == PadMode::reflect) require(before[i] < in[i] && after[i] < in[i] && before[i] >= 0 && after[i] >= 0, "reflect padding must be < the input size");
    if (m == PadMode::replicate) require(in[i] > 0 && before[i] >= 0 && after[i] >= 0, "replicate padding needs a non-empty input");
    if (m == PadMode::circular) require(before[i] <= in[i] && after[i] <= in[i] && before[i] >= 0 && after[i] >= 0 && (in[i] > 0 || before[i] + after[i] == 0), "circular padding must be <= the input size");
  }
  require(y.shape(0) == s.outer, "out has the wrong shape");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().pad(s, xp, yp, static_cast<PadMode>(mode), static_cast<T>(value));
  });
}

void unary(int op, const py::array& x, py::array y, double alpha) {
  DType dt = dtype_of(x, "input");
  require(op >= 0 && op <= static_cast<int>(UnaryOp::gelu_tanh), "unknown activation");
  require((x.flags() & py::array::c_style) && (y.flags() & py::array::c_style) && y.writeable(),
          "input and out must be C-contiguous, out writeable");
  require(dtype_of(y, "out") == dt && y.size() == x.size(), "out must match the input's dtype and size");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    int64_t n = x.size();
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().unary(static_cast<UnaryOp>(op), xp, yp, n, static_cast<T>(alpha));
  });
}

void softmax(const py::array& x, py::array y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  DType dt = dtype_of(x, "input");
  require((x.flags() & py::array::c_style) && (y.flags() & py::array::c_style) && y.writeable(),
          "input and out must be C-contiguous, out writeable");
  require(dtype_of(y, "out") == dt && x.size() == outer * dim * inner && y.size() == x.size() && outer >= 0 &&
              dim >= 0 && inner >= 0,
          "outer * dim * inner must equal the input's size");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().softmax(xp, yp, outer, dim, inner, log);
  });
}

void maxout(const py::array& x, py::array y, int64_t outer, int64_t groups, int64_t pieces, int64_t inner) {
  DType dt = dtype_of(x, "input");
  require((x.flags() & py::array::c_style) && (y.flags() & py::array::c_style) && y.writeable(),
          "input and out must be C-contiguous, out writeable");
  require(outer >= 0 && groups >= 0 && pieces >= 1 && inner >= 0 && dtype_of(y, "out") == dt &&
              x.size() == outer * groups * pieces * inner && y.size() == outer * groups * inner,
          "maxout sizes do not match the arrays");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().maxout(xp, yp, outer, groups, pieces, inner);
  });
}

void linear(const py::array& x, const py::array& w, const py::object& bias, py::array y) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 2);
  check_array(w, "weight", dt, 2);
  check_array(y, "out", dt, 2, true);
  const int64_t M = x.shape(0), K = x.shape(1), N = w.shape(0);
  require(w.shape(1) == K && y.shape(0) == M && y.shape(1) == N, "linear shapes do not match");
  py::array b;
  if (!bias.is_none()) {
    b = bias.cast<py::array>();
    check_array(b, "bias", dt, 1);
    require(b.shape(0) == N, "bias must have out_features elements");
  }
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* bp = bias.is_none() ? nullptr : cdata<T>(b);
    const T* xp = cdata<T>(x); const T* wp = cdata<T>(w); T* yp = data<T>(y);
    const KernelCall call(M * N * K);
    kernels_for<T>().linear(xp, wp, bp, yp, M, N, K);
  });
}

// A C-contiguous array whose memory comes from the output cache (see memory.h).
py::array cached_empty(const std::vector<int64_t>& shape, const py::dtype& dtype) {
  size_t count = 1;
  for (int64_t d : shape) {
    require(d >= 0, "shape must be non-negative");
    count *= static_cast<size_t>(d);
  }
  const size_t bytes = count * dtype.itemsize();
  if (bytes < kCachedMinBytes) return py::array(dtype, shape);
  void* ptr = cached_alloc(bytes);
  py::capsule owner(ptr, [](void* p) { cached_free(p); });
  return py::array(dtype, shape, ptr, owner);
}

py::dict backend_info() {
  py::dict d;
  d["isa"] = isa_name(kernels().isa);
  std::vector<std::string> compiled, supported;
  for (Isa i : compiled_isas()) compiled.push_back(isa_name(i));
  for (Isa i : supported_isas()) supported.push_back(isa_name(i));
  d["compiled_isas"] = compiled;
  d["supported_isas"] = supported;
  d["cpu_features"] = cpu_features();
  d["num_threads"] = get_num_threads();
  return d;
}

}  // namespace
}  // namespace medconv

PYBIND11_MODULE(_core, m) {
  using namespace medconv;
  m.doc() = "medconv's compiled kernels; use medconv.functional, which validates arguments.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("conv_forward", &conv_forward, py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("out"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("activation") = 0);
  m.def("max_pool", &max_pool, py::arg("x"), py::arg("out"), py::arg("indices"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"));
  m.def("avg_pool", &avg_pool, py::arg("x"), py::arg("out"), py::arg("kernel"), py::arg("stride"),
        py::arg("padding"), py::arg("count_include_pad"), py::arg("divisor"));
  m.def("adaptive_avg_pool", &adaptive_avg_pool, py::arg("x"), py::arg("out"));
  m.def("pad", &pad, py::arg("x"), py::arg("out"), py::arg("before"), py::arg("after"), py::arg("mode"),
        py::arg("value"));
  m.def("unary", &unary, py::arg("op"), py::arg("x"), py::arg("out"), py::arg("alpha"));
  m.def("softmax", &softmax, py::arg("x"), py::arg("out"), py::arg("outer"), py::arg("dim"), py::arg("inner"),
        py::arg("log"));
  m.def("maxout", &maxout, py::arg("x"), py::arg("out"), py::arg("outer"), py::arg("groups"), py::arg("pieces"),
        py::arg("inner"));
  m.def("linear", &linear, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("out"));
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  });
  m.def("get_num_threads", &get_num_threads);
  m.def("backend_info", &backend_info);
  m.def("empty", &cached_empty, py::arg("shape"), py::arg("dtype"));
  m.def("set_cache_limit", [](int64_t bytes) {
    if (bytes < 0) throw std::invalid_argument("cache limit must be >= 0 bytes");
    set_cache_limit(static_cast<size_t>(bytes));
  });
  m.def("set_filter_cache_limit", [](int64_t bytes) {
    if (bytes < 0) throw std::invalid_argument("filter cache limit must be >= 0 bytes");
    set_filter_cache_limit(bytes);
  });
  m.def("cache_info", []() {
    py::dict d;
    d["limit_bytes"] = cache_limit();
    d["cached_bytes"] = cached_bytes();
    d["filter_limit_bytes"] = filter_cache_limit();
    d["filter_cached_bytes"] = filter_cache_bytes();
    return d;
  });
  m.def("release_cache", []() {
    release_cache();
    release_filter_cache();
  });
  m.def("conv_plans", []() {
    py::list out;
    for (const auto& [key, name] : conv_plans()) {
      static const char* fields[] = {"isa", "dtype_size", "relu", "N", "C", "D", "H", "W", "OC", "KD", "KH", "KW",
                                     "OD", "OH", "OW", "stride_d", "stride_h", "stride_w", "pad_d", "pad_h", "pad_w",
                                     "dilation_d", "dilation_h", "dilation_w", "groups"};
      py::dict d;
      for (size_t i = 0; i < key.size(); ++i) d[fields[i]] = key[i];
      d["isa"] = isa_name(static_cast<Isa>(key[0]));
      d["algorithm"] = name;
      out.append(d);
    }
    return out;
  }, "The cached convolution plans: each shape seen and the algorithm chosen for it.");
  m.def("clear_conv_plans", &conv_plan_clear);
  m.def("select_isa", &select_isa, py::arg("name"));
  m.attr("UNARY_OPS") = py::dict(py::arg("relu") = 0, py::arg("leaky_relu") = 1, py::arg("elu") = 2,
                                 py::arg("sigmoid") = 3, py::arg("tanh") = 4, py::arg("gelu") = 5,
                                 py::arg("gelu_tanh") = 6);
  m.attr("PAD_MODES") = py::dict(py::arg("constant") = 0, py::arg("reflect") = 1, py::arg("replicate") = 2,
                                 py::arg("circular") = 3);
  register_dicom(m);
  register_nn(m);
}
