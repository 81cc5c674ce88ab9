// Nearest, nearest-exact and (bi/tri)linear resampling and their gradients, as
// cpp/interpolate_ref.cpp (ATen's UpSample.h index and weight rules). Modes are
// medconv._core.INTERP_MODES: nearest=0, nearest-exact=1, linear=2. Every tensor is
// [planes, D, H, W]; 1d and 2d run with size-1 dims (which keep one tap of weight 1).
#include "common.cuh"

struct InterpAxis {
  i64 in, out;
  double scale;  // the caller's scale_factor for this dim; <= 0 when not given
};

template <class T>
struct Tap {
  i64 i0, i1;
  T l1;  // the weight of i1; i0 has 1 - l1
};

// compute_scales_value: 1 / scale_factor when given, else in / out
template <class T>
__device__ __forceinline__ T scale_value(double scale, i64 in, i64 out) {
  return scale > 0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
}

// The taps of output index o along one axis (products unfused: an index must round as on the CPU).
template <class T>
__device__ __forceinline__ Tap<T> axis_tap(i64 o, const InterpAxis& a, int mode, int align_corners) {
  Tap<T> t{o, o, T(0)};
  if (a.in == a.out) return t;
  if (mode == 0) {  // nearest_idx
    if (a.out == 2 * a.in) {
      t.i0 = o >> 1;
    } else {
      const float sc = scale_value<float>(a.scale, a.in, a.out);
      t.i0 = mc_min<i64>(static_cast<i64>(floorf(mc_mul_rn(static_cast<float>(o), sc))), a.in - 1);
    }
    t.i1 = t.i0;
  } else if (mode == 1) {  // nearest_exact_idx: float((o + 0.5) * sc), the product in double
    const float sc = scale_value<float>(a.scale, a.in, a.out);
    const double src = mc_mul_rn(static_cast<double>(o) + 0.5, static_cast<double>(sc));
    t.i0 = mc_min<i64>(static_cast<i64>(floorf(static_cast<float>(src))), a.in - 1);
    t.i1 = t.i0;
  } else {  // compute_source_index_and_lambda
    T ratio;
    if (align_corners) ratio = a.out > 1 ? static_cast<T>(a.in - 1) / static_cast<T>(a.out - 1) : T(0);
    else ratio = scale_value<T>(a.scale, a.in, a.out);
    T src = align_corners ? mc_mul_rn(ratio, static_cast<T>(o))
                          : mc_add_rn(mc_mul_rn(ratio, mc_add_rn(static_cast<T>(o), T(0.5))), T(-0.5));
    if (!align_corners && src < T(0)) src = T(0);
    t.i0 = mc_min<i64>(static_cast<i64>(floorf(static_cast<float>(src))), a.in - 1);
    t.l1 = mc_min(mc_max(src - static_cast<T>(t.i0), T(0)), T(1));
    t.i1 = t.i0 + (t.i0 < a.in - 1 ? 1 : 0);
  }
  return t;
}

// y[p, od, oh, ow] = sum over taps a, b, c of ld[a] * (lh[b] * (lw[c] * x[p, id[a], ih[b], iw[c]]))
template <class T>
__device__ void interpolate_forward(const T* __restrict__ x, T* __restrict__ y, i64 planes, i64 D, i64 H, i64 W,
                                    i64 OD, i64 OH, i64 OW, int mode, int align_corners, double scale_d,
                                    double scale_h, double scale_w) {
  const InterpAxis ad{D, OD, scale_d}, ah{H, OH, scale_h}, aw{W, OW, scale_w};
  const int two = mode == 2 ? 2 : 1;
  const int nd = D == OD ? 1 : two, nh = H == OH ? 1 : two, nw = W == OW ? 1 : two;
  MC_FOR(e, planes * OD * OH * OW) {
    const i64 ow = e % OW;
    i64 r = e / OW;
    const i64 oh = r % OH;
    r /= OH;
    const i64 od = r % OD, p = r / OD;
    const Tap<T> td = axis_tap<T>(od, ad, mode, align_corners), th = axis_tap<T>(oh, ah, mode, align_corners),
                 tw = axis_tap<T>(ow, aw, mode, align_corners);
    const T* xp = x + p * D * H * W;
    const i64 id[2] = {td.i0, td.i1}, ih[2] = {th.i0, th.i1}, iw[2] = {tw.i0, tw.i1};
    const T ld[2] = {T(1) - td.l1, td.l1}, lh[2] = {T(1) - th.l1, th.l1}, lw[2] = {T(1) - tw.l1, tw.l1};
    T acc = T(0);
    for (int i = 0; i < nd; ++i) {
      T acc_h = T(0);
      for (int j = 0; j < nh; ++j) {
        const T* row = xp + (id[i] * H + ih[j]) * W;
        T acc_w = T(0);
        for (int k = 0; k < nw; ++k) acc_w += nw == 1 ? row[iw[k]] : lw[k] * row[iw[k]];
        acc_h += nh == 1 ? acc_w : lh[j] * acc_w;
      }
      acc += nd == 1 ? acc_h : ld[i] * acc_h;
    }
    y[e] = acc;
  }
}

// The first output o in [0, out] whose tap `which` (0: i0, 1: i1) is >= target (taps are
// non-decreasing in o).
template <class T>
__device__ __forceinline__ i64 first_output_at(i64 target, int which, const InterpAxis& a, int mode, int align) {
  i64 lo = 0, hi = a.out;
  while (lo < hi) {
    const i64 mid = lo + (hi - lo) / 2;
    const Tap<T> t = axis_tap<T>(mid, a, mode, align);
    if ((which ? t.i1 : t.i0) >= target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// The outputs [lo, hi) of one axis whose taps (the first `taps` of them) include input index i.
template <class T>
__device__ __forceinline__ void outputs_of(i64 i, const InterpAxis& a, int taps, int mode, int align, i64& lo,
                                           i64& hi) {
  lo = first_output_at<T>(i, 0, a, mode, align);
  hi = first_output_at<T>(i + 1, 0, a, mode, align);
  if (taps == 2) {
    lo = mc_min(lo, first_output_at<T>(i, 1, a, mode, align));
    hi = mc_max(hi, first_output_at<T>(i + 1, 1, a, mode, align));
  }
}

// The transpose of interpolate_forward: gx[p, i] = sum over the outputs o that tap i (in
// increasing o, then tap order, as the CPU adds) of gy[p, o] times the tap weights.
template <class T>
__device__ void interpolate_backward(const T* __restrict__ gy, T* __restrict__ gx, i64 planes, i64 D, i64 H, i64 W,
                                     i64 OD, i64 OH, i64 OW, int mode, int align_corners, double scale_d,
                                     double scale_h, double scale_w) {
  const InterpAxis ad{D, OD, scale_d}, ah{H, OH, scale_h}, aw{W, OW, scale_w};
  const int two = mode == 2 ? 2 : 1;
  const int nd = D == OD ? 1 : two, nh = H == OH ? 1 : two, nw = W == OW ? 1 : two;
  MC_FOR(e, planes * D * H * W) {
    const i64 w = e % W;
    i64 r = e / W;
    const i64 h = r % H;
    r /= H;
    const i64 d = r % D, p = r / D;
    i64 d_lo, d_hi, h_lo, h_hi, w_lo, w_hi;
    outputs_of<T>(d, ad, nd, mode, align_corners, d_lo, d_hi);
    outputs_of<T>(h, ah, nh, mode, align_corners, h_lo, h_hi);
    outputs_of<T>(w, aw, nw, mode, align_corners, w_lo, w_hi);
    const T* gp = gy + p * OD * OH * OW;
    T acc = T(0);
    for (i64 od = d_lo; od < d_hi; ++od) {
      const Tap<T> td = axis_tap<T>(od, ad, mode, align_corners);
      for (i64 oh = h_lo; oh < h_hi; ++oh) {
        const Tap<T> th = axis_tap<T>(oh, ah, mode, align_corners);
        for (i64 ow = w_lo; ow < w_hi; ++ow) {
          const Tap<T> tw = axis_tap<T>(ow, aw, mode, align_corners);
          const T v = gp[(od * OH + oh) * OW + ow];
          for (int i = 0; i < nd; ++i) {
            if ((i ? td.i1 : td.i0) != d) continue;
            const T vd = nd == 1 ? v : v * (i ? td.l1 : T(1) - td.l1);
            for (int j = 0; j < nh; ++j) {
              if ((j ? th.i1 : th.i0) != h) continue;
              const T vh = nh == 1 ? vd : vd * (j ? th.l1 : T(1) - th.l1);
              for (int k = 0; k < nw; ++k) {
                if ((k ? tw.i1 : tw.i0) != w) continue;
                acc += nw == 1 ? vh : vh * (k ? tw.l1 : T(1) - tw.l1);
              }
            }
          }
        }
      }
    }
    gx[e] = acc;
  }
}

#define MC_INTERP_PARAMS                                                                                 \
  i64 planes, i64 D, i64 H, i64 W, i64 OD, i64 OH, i64 OW, int mode, int align_corners, double scale_d, \
      double scale_h, double scale_w
#define MC_INTERP_ARGS planes, D, H, W, OD, OH, OW, mode, align_corners, scale_d, scale_h, scale_w

#define MC_INTERPOLATE(T, S)                                                                              \
  MC_EXPORT(interpolate_forward_##S, (const T* x, T* y, MC_INTERP_PARAMS),                                \
            interpolate_forward<T>(x, y, MC_INTERP_ARGS))                                                 \
  MC_EXPORT(interpolate_backward_##S, (const T* gy, T* gx, MC_INTERP_PARAMS),                             \
            interpolate_backward<T>(gy, gx, MC_INTERP_ARGS))

MC_INTERPOLATE(float, f32)
MC_INTERPOLATE(double, f64)
