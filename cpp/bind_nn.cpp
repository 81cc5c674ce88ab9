// pybind11 glue for the backward and training kernels: unpack arrays, check what keeps memory
// safe (dtypes, dims, contiguity, matching sizes), release the GIL, call the kernel.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/numpy.h>

#include "bind_util.h"

#include <algorithm>
#include <cmath>
#include <array>
#include <stdexcept>
#include <string>

#include "dispatch.h"
#include "nn_kernels.h"

namespace py = pybind11;

namespace medconv {
namespace {

using namespace bind;
using Double3 = std::array<double, 3>;

// gy [N, OC, O...], w [OC, Cg, K...] -> gx [N, C, I...]
void conv_backward_input_py(const py::array& gy, const py::array& w, py::array gx, Int3 stride, Int3 pad, Int3 dilation,
                         int64_t groups) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 5);
  check_array(w, "weight", dt, 5);
  check_array(gx, "grad_input", dt, 5, true);
  ConvShape s = conv_shape(gx, w, gy, stride, pad, dilation, groups);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); const T* wp = cdata<T>(w); T* xp = data<T>(gx);
    const KernelCall call(gy.size() * (w.size() / std::max<py::ssize_t>(1, w.shape(0))));
    conv_backward_input<T>(s, gp, wp, xp);
  });
}

// x [N, C, I...], gy [N, OC, O...] -> gw [OC, Cg, K...]
void conv_backward_weight_py(const py::array& x, const py::array& gy, py::array gw, Int3 stride, Int3 pad, Int3 dilation,
                          int64_t groups) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 5);
  check_array(gy, "grad_output", dt, 5);
  check_array(gw, "grad_weight", dt, 5, true);
  ConvShape s = conv_shape(x, gw, gy, stride, pad, dilation, groups);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); const T* gp = cdata<T>(gy); T* wp = data<T>(gw);
    const KernelCall call(gy.size() * (gw.size() / std::max<py::ssize_t>(1, gw.shape(0))));
    conv_backward_weight<T>(s, xp, gp, wp);
  });
}

// gy [N, C, ...] -> gb [C] = sum over every dim but 1
void channel_sum_py(const py::array& gy, py::array gb) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, -1);
  check_array(gb, "grad_bias", dt, 1, true);
  require(gy.ndim() >= 2, "grad_output must have at least 2 dims (N, C, ...)");
  const int64_t N = gy.shape(0), C = gy.shape(1);
  require(gb.shape(0) == C, "grad_bias must have one element per channel");
  const int64_t S = C * N == 0 ? 0 : gy.size() / (N * C);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); T* bp = data<T>(gb);
    const KernelCall call(gy.size());
    channel_sum_ref<T>(gp, bp, N, C, S);
  });
}

// x [N, Cin, I...], w [Cin, Cout/groups, K...], bias [Cout] -> y [N, Cout, O...]
void conv_transpose_forward_py(const py::array& x, const py::array& w, const py::object& bias, py::array y, Int3 stride,
                            Int3 pad, Int3 dilation, int64_t groups) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 5);
  check_array(w, "weight", dt, 5);
  check_array(y, "out", dt, 5, true);
  // the conv whose input gradient this is: conv-x = y, conv-w = w, conv-y = x
  ConvShape s = conv_shape(y, w, x, stride, pad, dilation, groups);
  Optional b = optional_array(bias, "bias", dt, s.C);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); const T* wp = cdata<T>(w); const T* bp = cdata_or_null<T>(b); T* yp = data<T>(y);
    const KernelCall call(x.size() * (w.size() / std::max<py::ssize_t>(1, w.shape(0))));
    conv_transpose_forward<T>(s, xp, wp, bp, yp);
  });
}

// gy [outer, D', H', W'] -> gx [outer, D, H, W]
void pad_backward_py(const py::array& gy, py::array gx, Int3 before, Int3 after, int mode) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 4);
  check_array(gx, "grad_input", dt, 4, true);
  require(mode >= 0 && mode <= 3, "mode must be constant, reflect, replicate or circular");
  PadShape s{};
  s.outer = gx.shape(0); s.D = gx.shape(1); s.H = gx.shape(2); s.W = gx.shape(3);
  require(gy.shape(0) == s.outer, "grad_output and grad_input have different leading sizes");
  const int64_t in[3] = {s.D, s.H, s.W};
  const PadMode m = static_cast<PadMode>(mode);
  for (int i = 0; i < 3; ++i) {
    s.before[i] = before[i]; s.after[i] = after[i];
    require(gy.shape(i + 1) == std::max<int64_t>(0, in[i] + before[i] + after[i]), "grad_output has the wrong shape");
    if (m != PadMode::constant) require(before[i] >= 0 && after[i] >= 0, "padding must be >= 0 unless constant");
    if (m == PadMode::reflect) require(before[i] < in[i] && after[i] < in[i], "reflect padding must be < the input size");
    if (m == PadMode::circular) require(before[i] <= in[i] && after[i] <= in[i], "circular padding must be <= the input size");
  }
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); T* xp = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    pad_backward_ref<T>(s, gp, xp, m);
  });
}

// gy, indices [planes, O...]; gx [planes, I...] (any dims >= 1, flattened per plane)
void max_pool_backward_py(const py::array& gy, const py::array& indices, py::array gx) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, -1);
  check_array(gx, "grad_input", dt, -1, true);
  require(indices.dtype().is(py::dtype::of<int64_t>()) && (indices.flags() & py::array::c_style),
          "indices must be a C-contiguous int64 array");
  require(gy.ndim() >= 1 && gx.ndim() >= 1 && indices.size() == gy.size(), "indices must have grad_output's size");
  const int64_t planes = gx.shape(0);
  require(gy.shape(0) == planes, "grad_output and grad_input must have the same number of planes");
  const int64_t in_plane = planes ? gx.size() / planes : 0, out_plane = planes ? gy.size() / planes : 0;
  const int64_t* ip = static_cast<const int64_t*>(indices.data());
  int64_t lo = 0, hi = 0;
  for (int64_t i = 0; i < indices.size(); ++i) lo = std::min(lo, ip[i]), hi = std::max(hi, ip[i]);
  if (lo < 0 || (indices.size() > 0 && hi >= in_plane))
    fail("indices", " must lie in [0, input plane size " + std::to_string(in_plane) + "), got values in [" +
                        std::to_string(lo) + ", " + std::to_string(hi) + "]");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); T* xp = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    max_pool_backward_ref<T>(planes, in_plane, out_plane, gp, ip, xp);
  });
}

void avg_pool_backward_py(const py::array& gy, py::array gx, Int3 kernel, Int3 stride, Int3 pad, bool count_include_pad,
                       int64_t divisor) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 4);
  check_array(gx, "grad_input", dt, 4, true);
  require(divisor >= 0, "divisor_override must be positive");
  PoolShape s = pool_shape(gx, gy, kernel, stride, pad, Int3{1, 1, 1});
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); T* xp = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    avg_pool_backward_ref<T>(s, gp, xp, count_include_pad, divisor);
  });
}

void adaptive_avg_pool_backward_py(const py::array& gy, py::array gx) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 4);
  check_array(gx, "grad_input", dt, 4, true);
  PoolShape s = adaptive_shape(gx, gy);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); T* xp = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    adaptive_avg_pool_backward_ref<T>(s, gp, xp);
  });
}

void unary_backward_py(int op, const py::object& x, const py::object& y, const py::array& gy, py::array gx, double alpha) {
  DType dt = dtype_of(gy, "grad_output");
  require(op >= 0 && op <= static_cast<int>(UnaryOp::gelu_tanh), "unknown activation");
  check_array(gy, "grad_output", dt, -1);
  check_array(gx, "grad_input", dt, -1, true);
  const int64_t n = gy.size();
  require(gx.size() == n, "grad_input must have grad_output's size");
  Optional xa = optional_array(x, "input", dt, n);
  Optional ya = optional_array(y, "output", dt, n);
  const UnaryOp u = static_cast<UnaryOp>(op);
  const bool y_enough = u == UnaryOp::sigmoid || u == UnaryOp::tanh;
  require(xa || (ya && y_enough), "input is required for this activation's gradient");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata_or_null<T>(xa); const T* yp = cdata_or_null<T>(ya);
    const T* gp = cdata<T>(gy); T* op_ = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    unary_backward<T>(u, xp, yp, gp, op_, n, static_cast<T>(alpha));
  });
}

void softmax_backward_py(const py::array& y, const py::array& gy, py::array gx, int64_t outer, int64_t dim, int64_t inner,
                      bool log) {
  DType dt = dtype_of(y, "output");
  check_array(y, "output", dt, -1);
  check_array(gy, "grad_output", dt, -1);
  check_array(gx, "grad_input", dt, -1, true);
  require(outer >= 0 && dim >= 0 && inner >= 0 && y.size() == outer * dim * inner && gy.size() == y.size() &&
              gx.size() == y.size(),
          "outer * dim * inner must equal the size of output, grad_output and grad_input");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* yp = cdata<T>(y); const T* gp = cdata<T>(gy); T* xp = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    softmax_backward_ref<T>(yp, gp, xp, outer, dim, inner, log);
  });
}

void maxout_backward_py(const py::array& x, const py::array& gy, py::array gx, int64_t outer, int64_t groups,
                     int64_t pieces, int64_t inner) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, -1);
  check_array(gy, "grad_output", dt, -1);
  check_array(gx, "grad_input", dt, -1, true);
  require(outer >= 0 && groups >= 0 && pieces >= 1 && inner >= 0 && x.size() == outer * groups * pieces * inner &&
              gx.size() == x.size() && gy.size() == outer * groups * inner,
          "maxout sizes do not match the arrays");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); const T* gp = cdata<T>(gy); T* op_ = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    maxout_backward_ref<T>(xp, gp, op_, outer, groups, pieces, inner);
  });
}

// gy [M, N], w [N, K] -> gx [M, K]
void linear_backward_input_py(const py::array& gy, const py::array& w, py::array gx) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 2);
  check_array(w, "weight", dt, 2);
  check_array(gx, "grad_input", dt, 2, true);
  const int64_t M = gy.shape(0), N = gy.shape(1), K = w.shape(1);
  require(w.shape(0) == N && gx.shape(0) == M && gx.shape(1) == K, "linear shapes do not match");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); const T* wp = cdata<T>(w); T* xp = data<T>(gx);
    const KernelCall call(M * N * K);
    kernels_for<T>().linear_backward_input(gp, wp, xp, M, N, K);
  });
}

// gy [M, N], x [M, K] -> gw [N, K], gb [N] (optional)
void linear_backward_weight_py(const py::array& gy, const py::array& x, py::array gw, const py::object& gb) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 2);
  check_array(x, "input", dt, 2);
  check_array(gw, "grad_weight", dt, 2, true);
  const int64_t M = gy.shape(0), N = gy.shape(1), K = x.shape(1);
  require(x.shape(0) == M && gw.shape(0) == N && gw.shape(1) == K, "linear shapes do not match");
  Optional b = optional_array(gb, "grad_bias", dt, N, true);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); const T* xp = cdata<T>(x); T* wp = data<T>(gw); T* bp = data_or_null<T>(b);
    const KernelCall call(M * N * K);
    kernels_for<T>().linear_backward_weight(gp, xp, wp, bp, M, N, K);
  });
}

InterpShape interp_shape(const py::array& x, const py::array& y, int mode, bool align_corners, Double3 scale) {
  require(mode >= 0 && mode <= 2, "mode must be nearest, nearest-exact or linear");
  InterpShape s{};
  s.planes = x.shape(0); s.D = x.shape(1); s.H = x.shape(2); s.W = x.shape(3);
  s.OD = y.shape(1); s.OH = y.shape(2); s.OW = y.shape(3);
  require(y.shape(0) == s.planes, "input and output must have the same number of planes");
  require((s.D > 0 && s.H > 0 && s.W > 0 && s.OD > 0 && s.OH > 0 && s.OW > 0) || s.planes == 0,
          "input and output spatial sizes must be positive");
  for (int i = 0; i < 3; ++i) s.scale[i] = scale[i];
  s.align_corners = align_corners;
  s.mode = static_cast<InterpMode>(mode);
  return s;
}

void interpolate_py(const py::array& x, py::array y, int mode, bool align_corners, Double3 scale) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 4);
  check_array(y, "out", dt, 4, true);
  InterpShape s = interp_shape(x, y, mode, align_corners, scale);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().interpolate(s, xp, yp);
  });
}

void interpolate_backward_py(const py::array& gy, py::array gx, int mode, bool align_corners, Double3 scale) {
  DType dt = dtype_of(gy, "grad_output");
  check_array(gy, "grad_output", dt, 4);
  check_array(gx, "grad_input", dt, 4, true);
  InterpShape s = interp_shape(gx, gy, mode, align_corners, scale);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = cdata<T>(gy); T* xp = data<T>(gx);
    const KernelCall call(gy.size() + gx.size());
    kernels_for<T>().interpolate_backward(s, gp, xp);
  });
}

// x [N, C, S]
void batch_norm_stats_py(const py::array& x, py::array mean, py::array var, py::array invstd, double eps) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 3);
  const int64_t N = x.shape(0), C = x.shape(1), S = x.shape(2);
  for (py::array* a : {&mean, &var, &invstd}) {
    check_array(*a, "statistics", dt, 1, true);
    require(a->shape(0) == C, "statistics must have one element per channel");
  }
  require(eps >= 0, "eps must be >= 0");
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); T* mp = data<T>(mean); T* vp = data<T>(var); T* ip = data<T>(invstd);
    const KernelCall call(x.size());
    kernels_for<T>().batch_norm_stats(xp, N, C, S, eps, mp, vp, ip);
  });
}

void batch_norm_apply_py(const py::array& x, const py::array& mean, const py::array& invstd, const py::object& gamma,
                      const py::object& beta, py::array y) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 3);
  check_array(y, "out", dt, 3, true);
  const int64_t N = x.shape(0), C = x.shape(1), S = x.shape(2);
  require(y.shape(0) == N && y.shape(1) == C && y.shape(2) == S, "out must have the input's shape");
  check_array(mean, "mean", dt, 1);
  check_array(invstd, "invstd", dt, 1);
  require(mean.shape(0) == C && invstd.shape(0) == C, "statistics must have one element per channel");
  Optional g = optional_array(gamma, "weight", dt, C), b = optional_array(beta, "bias", dt, C);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); const T* mp = cdata<T>(mean); const T* ip = cdata<T>(invstd);
    const T* gp = cdata_or_null<T>(g); const T* bp = cdata_or_null<T>(b); T* yp = data<T>(y);
    const KernelCall call(x.size() + y.size());
    kernels_for<T>().batch_norm_apply(xp, N, C, S, mp, ip, gp, bp, yp);
  });
}

// 1 / sqrt(var + eps) per channel, in float64 and rounded once to var's dtype (as numpy's
// (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(dtype), in one call).
py::array batch_norm_invstd_py(const py::array& var, double eps) {
  DType dt = dtype_of(var, "running_var");
  check_array(var, "running_var", dt, 1);
  py::array out(var.dtype(), std::vector<py::ssize_t>{var.shape(0)});
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* v = cdata<T>(var);
    T* o = data<T>(out);
    for (int64_t c = 0; c < var.shape(0); ++c) o[c] = static_cast<T>(1.0 / std::sqrt(static_cast<double>(v[c]) + eps));
  });
  return out;
}

void batch_norm_backward_py(const py::array& x, const py::array& gy, const py::array& mean, const py::array& invstd,
                         const py::object& gamma, bool training, const py::object& gx, const py::object& ggamma,
                         const py::object& gbeta) {
  DType dt = dtype_of(x, "input");
  check_array(x, "input", dt, 3);
  check_array(gy, "grad_output", dt, 3);
  const int64_t N = x.shape(0), C = x.shape(1), S = x.shape(2);
  require(gy.shape(0) == N && gy.shape(1) == C && gy.shape(2) == S, "grad_output must have the input's shape");
  check_array(mean, "mean", dt, 1);
  check_array(invstd, "invstd", dt, 1);
  require(mean.shape(0) == C && invstd.shape(0) == C, "statistics must have one element per channel");
  Optional g = optional_array(gamma, "weight", dt, C);
  Optional gxa = optional_array(gx, "grad_input", dt, N * C * S, true);
  Optional gga = optional_array(ggamma, "grad_weight", dt, C, true);
  Optional gba = optional_array(gbeta, "grad_bias", dt, C, true);
  with_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = cdata<T>(x); const T* gp = cdata<T>(gy); const T* mp = cdata<T>(mean);
    const T* ip = cdata<T>(invstd); const T* wp = cdata_or_null<T>(g);
    T* gxp = data_or_null<T>(gxa); T* ggp = data_or_null<T>(gga); T* gbp = data_or_null<T>(gba);
    const KernelCall call(x.size() + gy.size());
    kernels_for<T>().batch_norm_backward(xp, gp, N, C, S, mp, ip, wp, training, gxp, ggp, gbp);
  });
}

}  // namespace

void register_nn(py::module_& m) {
  m.def("conv_backward_input", &conv_backward_input_py, py::arg("grad_output"), py::arg("weight"),
        py::arg("grad_input"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def("conv_backward_weight", &conv_backward_weight_py, py::arg("x"), py::arg("grad_output"), py::arg("grad_weight"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def("channel_sum", &channel_sum_py, py::arg("grad_output"), py::arg("out"));
  m.def("conv_transpose_forward", &conv_transpose_forward_py, py::arg("x"), py::arg("w"), py::arg("bias"),
        py::arg("out"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"));
  m.def("pad_backward", &pad_backward_py, py::arg("grad_output"), py::arg("grad_input"), py::arg("before"),
        py::arg("after"), py::arg("mode"));
  m.def("max_pool_backward", &max_pool_backward_py, py::arg("grad_output"), py::arg("indices"), py::arg("grad_input"));
  m.def("avg_pool_backward", &avg_pool_backward_py, py::arg("grad_output"), py::arg("grad_input"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"), py::arg("divisor"));
  m.def("adaptive_avg_pool_backward", &adaptive_avg_pool_backward_py, py::arg("grad_output"), py::arg("grad_input"));
  m.def("unary_backward", &unary_backward_py, py::arg("op"), py::arg("x"), py::arg("y"), py::arg("grad_output"),
        py::arg("grad_input"), py::arg("alpha"));
  m.def("softmax_backward", &softmax_backward_py, py::arg("y"), py::arg("grad_output"), py::arg("grad_input"),
        py::arg("outer"), py::arg("dim"), py::arg("inner"), py::arg("log"));
  m.def("maxout_backward", &maxout_backward_py, py::arg("x"), py::arg("grad_output"), py::arg("grad_input"),
        py::arg("outer"), py::arg("groups"), py::arg("pieces"), py::arg("inner"));
  m.def("linear_backward_input", &linear_backward_input_py, py::arg("grad_output"), py::arg("weight"),
        py::arg("grad_input"));
  m.def("linear_backward_weight", &linear_backward_weight_py, py::arg("grad_output"), py::arg("x"),
        py::arg("grad_weight"), py::arg("grad_bias"));
  m.def("interpolate", &interpolate_py, py::arg("x"), py::arg("out"), py::arg("mode"), py::arg("align_corners"),
        py::arg("scale"));
  m.def("interpolate_backward", &interpolate_backward_py, py::arg("grad_output"), py::arg("grad_input"),
        py::arg("mode"), py::arg("align_corners"), py::arg("scale"));
  m.def("batch_norm_stats", &batch_norm_stats_py, py::arg("x"), py::arg("mean"), py::arg("var"), py::arg("invstd"),
        py::arg("eps"));
  m.def("batch_norm_invstd", &batch_norm_invstd_py, py::arg("var"), py::arg("eps"));
  m.def("batch_norm_apply", &batch_norm_apply_py, py::arg("x"), py::arg("mean"), py::arg("invstd"), py::arg("weight"),
        py::arg("bias"), py::arg("out"));
  m.def("batch_norm_backward", &batch_norm_backward_py, py::arg("x"), py::arg("grad_output"), py::arg("mean"),
        py::arg("invstd"), py::arg("weight"), py::arg("training"), py::arg("grad_input"), py::arg("grad_weight"),
        py::arg("grad_bias"));
  m.attr("INTERP_MODES") = py::dict(py::arg("nearest") = 0, py::arg("nearest-exact") = 1, py::arg("linear") = 2);
}

}  // namespace medconv
