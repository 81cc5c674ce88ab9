// Nearest, nearest-exact and (bi/tri)linear resampling and their gradients, the portable
// reference. Per dim, each output index reads one tap (nearest) or two (linear) with weights
// computed as ATen's UpSample.h does; 1d and 2d run as 3d with size-1 dims (weights 1 and 0).
#include <algorithm>
#include <cmath>
#include <vector>

#include "interpolate_backward.h"
#include "interpolate_taps.h"
#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {

namespace {

// compute_scales_value: 1 / scale_factor when given, else in / out
template <class T>
T scale_value(double scale, int64_t in, int64_t out) {
  return scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
}

template <class T>
Taps<T> axis_taps(InterpMode mode, bool align_corners, int64_t in, int64_t out, double scale) {
  Taps<T> t;
  t.i0.resize(out); t.i1.resize(out); t.l0.resize(out); t.l1.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t i0 = o, i1 = o;
    T l1 = T(0);
    if (in != out) {
      if (mode == InterpMode::nearest) {  // nearest_idx
        if (out == 2 * in) {
          i0 = o >> 1;
        } else {
          const float sc = scale_value<float>(scale, in, out);
          i0 = std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * sc)), in - 1);
        }
        i1 = i0;
      } else if (mode == InterpMode::nearest_exact) {  // nearest_exact_idx
        const float sc = scale_value<float>(scale, in, out);
        i0 = std::min(static_cast<int64_t>(std::floor(static_cast<float>((o + 0.5) * sc))), in - 1);
        i1 = i0;
      } else {  // compute_source_index_and_lambda
        T ratio;
        if (align_corners) ratio = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
        else ratio = scale_value<T>(scale, in, out);
        T src = align_corners ? ratio * static_cast<T>(o) : ratio * (static_cast<T>(o) + T(0.5)) - T(0.5);
        if (!align_corners && src < T(0)) src = T(0);
        i0 = std::min(static_cast<int64_t>(std::floor(static_cast<float>(src))), in - 1);
        l1 = std::min(std::max(src - static_cast<T>(i0), T(0)), T(1));
        i1 = i0 + (i0 < in - 1 ? 1 : 0);
      }
    }
    t.i0[o] = i0; t.i1[o] = i1; t.l1[o] = l1; t.l0[o] = T(1) - l1;
  }
  return t;
}

}  // namespace

template <class T>
AllTaps<T> all_taps(const InterpShape& s) {
  AllTaps<T> a;
  a.d = axis_taps<T>(s.mode, s.align_corners, s.D, s.OD, s.scale[0]);
  a.h = axis_taps<T>(s.mode, s.align_corners, s.H, s.OH, s.scale[1]);
  a.w = axis_taps<T>(s.mode, s.align_corners, s.W, s.OW, s.scale[2]);
  const int two = s.mode == InterpMode::linear ? 2 : 1;
  a.nd = s.D == s.OD ? 1 : two;
  a.nh = s.H == s.OH ? 1 : two;
  a.nw = s.W == s.OW ? 1 : two;
  return a;
}

template <class T>
RowTaps<T> row_taps(const AllTaps<T>& a, int64_t od, int64_t oh) {
  return RowTaps<T>{{a.d.i0[od], a.d.i1[od]}, {a.h.i0[oh], a.h.i1[oh]}, {a.d.l0[od], a.d.l1[od]},
                    {a.h.l0[oh], a.h.l1[oh]}};
}

template <class T>
T interpolate_point(const InterpShape& s, const AllTaps<T>& a, const RowTaps<T>& rt, const T* xp, int64_t ow) {
  const int64_t iw[2] = {a.w.i0[ow], a.w.i1[ow]};
  const T lw[2] = {a.w.l0[ow], a.w.l1[ow]};
  T acc = T(0);
  for (int i = 0; i < a.nd; ++i) {
    T acc_h = T(0);
    for (int j = 0; j < a.nh; ++j) {
      const T* row = xp + (rt.id[i] * s.H + rt.ih[j]) * s.W;
      T acc_w = T(0);
      for (int k = 0; k < a.nw; ++k) acc_w += a.nw == 1 ? row[iw[k]] : lw[k] * row[iw[k]];
      acc_h += a.nh == 1 ? acc_w : rt.lh[j] * acc_w;
    }
    acc += a.nd == 1 ? acc_h : rt.ld[i] * acc_h;
  }
  return acc;
}

// x: [planes, D, H, W], y: [planes, OD, OH, OW]; one output row per task.
template <class T>
void interpolate_ref(const InterpShape& s, const T* x, T* y) {
  const AllTaps<T> a = all_taps<T>(s);
  const int64_t rows = s.planes * s.OD * s.OH;
  const int64_t in_plane = s.D * s.H * s.W;
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.OW)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, p = r / (s.OH * s.OD);
      const RowTaps<T> rt = row_taps(a, od, oh);
      for (int64_t ow = 0; ow < s.OW; ++ow) y[r * s.OW + ow] = interpolate_point(s, a, rt, x + p * in_plane, ow);
    }
  });
}

// The transpose of interpolate_ref. Linear upsamplings: interpolate_backward.h's separable passes.
// Others: each output's gradient, times its tap weights, is added to its taps; one thread per plane.
template <class T>
void interpolate_backward_ref(const InterpShape& s, const T* gy, T* gx) {
  const AllTaps<T> a = all_taps<T>(s);
  if (separable_backward_pays(s, a)) {
    interpolate_backward_separable<T>(s, a, gy, gx);
    return;
  }
  const int64_t in_plane = s.D * s.H * s.W, out_plane = s.OD * s.OH * s.OW;
  parallel_for(s.planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane + out_plane)),
               [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* g = gx + p * in_plane;
      std::fill(g, g + in_plane, T(0));
      const T* gp = gy + p * out_plane;
      for (int64_t od = 0; od < s.OD; ++od)
        for (int64_t oh = 0; oh < s.OH; ++oh)
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            const T v = gp[(od * s.OH + oh) * s.OW + ow];
            for (int i = 0; i < a.nd; ++i) {
              const int64_t id = i ? a.d.i1[od] : a.d.i0[od];
              const T vd = a.nd == 1 ? v : v * (i ? a.d.l1[od] : a.d.l0[od]);
              for (int j = 0; j < a.nh; ++j) {
                const int64_t ih = j ? a.h.i1[oh] : a.h.i0[oh];
                const T vh = a.nh == 1 ? vd : vd * (j ? a.h.l1[oh] : a.h.l0[oh]);
                T* row = g + (id * s.H + ih) * s.W;
                for (int k = 0; k < a.nw; ++k) {
                  const int64_t iw = k ? a.w.i1[ow] : a.w.i0[ow];
                  row[iw] += a.nw == 1 ? vh : vh * (k ? a.w.l1[ow] : a.w.l0[ow]);
                }
              }
            }
          }
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                      \
  template AllTaps<T> all_taps<T>(const InterpShape&);                              \
  template RowTaps<T> row_taps<T>(const AllTaps<T>&, int64_t, int64_t);               \
  template T interpolate_point<T>(const InterpShape&, const AllTaps<T>&, const RowTaps<T>&, const T*, int64_t); \
  template void interpolate_ref<T>(const InterpShape&, const T*, T*);               \
  template void interpolate_backward_ref<T>(const InterpShape&, const T*, T*);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
