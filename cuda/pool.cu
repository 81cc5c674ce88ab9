// Max, average and adaptive-average pooling and their gradients, as cpp/pool_ref.cpp and
// cpp/pool_backward_ref.cpp. Every tensor is [planes, D, H, W] (1d and 2d run with size-1 dims).
// The backward kernels gather: one thread per input element sums, in increasing output order,
// the outputs whose window holds it -- the order in which the CPU scatters, so no atomics and
// the same bits every run.
#include "common.cuh"

struct PoolGeom {  // one spatial dim of a window op
  i64 in, out, k, s, p, d;
};

__device__ __forceinline__ i64 first_tap(i64 start, i64 dilation) {  // smallest start + t*dilation >= 0
  return start >= 0 ? start : start + ((-start + dilation - 1) / dilation) * dilation;
}

// ------------------------------------------------------------------ max pool

// y[p, o] = max over the window's taps (NaN wins; the index is of the last NaN, else of the first
// maximum); indices (may be null) are flat into the plane [D, H, W] as in torch.
template <class T>
__device__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y, i64* __restrict__ indices, i64 planes,
                                 i64 D, i64 H, i64 W, i64 OD, i64 OH, i64 OW, int kd, int kh, int kw, int sd,
                                 int sh, int sw, int pd, int ph, int pw, int dd, int dh, int dw) {
  MC_FOR(e, planes * OD * OH * OW) {
    const i64 ow = e % OW;
    i64 r = e / OW;
    const i64 oh = r % OH;
    r /= OH;
    const i64 od = r % OD, p = r / OD;
    const T* xp = x + p * D * H * W;
    const i64 d0 = od * sd - pd, h0 = oh * sh - ph, w0 = ow * sw - pw;
    const i64 dend = mc_min<i64>(d0 + (i64)(kd - 1) * dd + 1, D);
    const i64 hend = mc_min<i64>(h0 + (i64)(kh - 1) * dh + 1, H);
    const i64 wend = mc_min<i64>(w0 + (i64)(kw - 1) * dw + 1, W);
    const i64 df = first_tap(d0, dd), hf = first_tap(h0, dh), wf = first_tap(w0, dw);
    T best = mc_neg_inf<T>();
    i64 best_index = (df * H + hf) * W + wf;
    for (i64 d = df; d < dend; d += dd)
      for (i64 h = hf; h < hend; h += dh)
        for (i64 w = wf; w < wend; w += dw) {
          const i64 i = (d * H + h) * W + w;
          const T v = xp[i];
          if (v > best || v != v) {
            best = v;
            best_index = i;
          }
        }
    y[e] = best;
    if (indices) indices[e] = best_index;
  }
}

// The outputs o of one dim whose window (taps o*s - p + t*d, t < k) holds input index i:
// o in [lo, hi], each still to be checked for (i + p - o*s) % d == 0.
__device__ __forceinline__ void window_outputs(i64 i, const PoolGeom& g, i64& lo, i64& hi) {
  const i64 span = (g.k - 1) * g.d;
  lo = mc_max<i64>(0, mc_floordiv(i + g.p - span + g.s - 1, g.s));
  hi = mc_min<i64>(g.out - 1, mc_floordiv(i + g.p, g.s));
}

// gy, indices: [planes, OD, OH, OW]; gx: [planes, D, H, W];
// gx[p, i] = sum of gy[p, o] over the outputs o whose window holds i and whose index is i.
// Valid when every index lies in its own window (indices from max_pool_forward); see
// max_pool_check_indices (check_indices) for others.
template <class T>
__device__ void max_pool_backward(const T* __restrict__ gy, const i64* __restrict__ indices, T* __restrict__ gx,
                                  i64 planes, i64 D, i64 H, i64 W, i64 OD, i64 OH, i64 OW, int kd, int kh, int kw,
                                  int sd, int sh, int sw, int pd, int ph, int pw, int dd, int dh, int dw) {
  const PoolGeom gd{D, OD, kd, sd, pd, dd}, gh{H, OH, kh, sh, ph, dh}, gw{W, OW, kw, sw, pw, dw};
  MC_FOR(e, planes * D * H * W) {
    const i64 w = e % W;
    i64 r = e / W;
    const i64 h = r % H;
    r /= H;
    const i64 d = r % D, p = r / D;
    const i64 flat = (d * H + h) * W + w;
    i64 d_lo, d_hi, h_lo, h_hi, w_lo, w_hi;
    window_outputs(d, gd, d_lo, d_hi);
    window_outputs(h, gh, h_lo, h_hi);
    window_outputs(w, gw, w_lo, w_hi);
    const i64 base = p * OD * OH * OW;
    T acc = T(0);
    for (i64 od = d_lo; od <= d_hi; ++od) {
      if ((d + pd - od * sd) % dd) continue;
      for (i64 oh = h_lo; oh <= h_hi; ++oh) {
        if ((h + ph - oh * sh) % dh) continue;
        for (i64 ow = w_lo; ow <= w_hi; ++ow) {
          if ((w + pw - ow * sw) % dw) continue;
          const i64 o = base + (od * OH + oh) * OW + ow;
          if (indices[o] == flat) acc += gy[o];
        }
      }
    }
    gx[e] = acc;
  }
}

// flag[0] |= 2 when an index lies outside [0, D*H*W); flag[0] |= 1 when an index lies in the
// plane but not on a tap of its own window (the gather above would miss it). flag: [1] int, zeroed.
__device__ __forceinline__ bool on_tap(i64 i, i64 o, const PoolGeom& g) {
  const i64 t = i - (o * g.s - g.p);
  return t >= 0 && t % g.d == 0 && t / g.d < g.k;
}

__device__ void check_indices(const i64* __restrict__ indices, int* __restrict__ flag, i64 planes, i64 D,
                                       i64 H, i64 W, i64 OD, i64 OH, i64 OW, int kd, int kh, int kw, int sd, int sh,
                                       int sw, int pd, int ph, int pw, int dd, int dh, int dw) {
  const PoolGeom gd{D, OD, kd, sd, pd, dd}, gh{H, OH, kh, sh, ph, dh}, gw{W, OW, kw, sw, pw, dw};
  MC_FOR(e, planes * OD * OH * OW) {
    const i64 ow = e % OW;
    i64 r = e / OW;
    const i64 oh = r % OH;
    r /= OH;
    const i64 od = r % OD;
    const i64 i = indices[e];
    int bad = 0;
    if (i < 0 || i >= D * H * W) {
      bad = 2;
    } else {
      const i64 w = i % W, h = (i / W) % H, d = i / (W * H);
      if (!on_tap(d, od, gd) || !on_tap(h, oh, gh) || !on_tap(w, ow, gw)) bad = 1;
    }
    if (bad && flag[0] < bad) flag[0] = bad;  // benign race: only ever raised, read after the kernel
  }
}

// The fallback for indices that are not on their window: one thread per plane scatters in output
// order, as the CPU does. gy, indices: [planes, out_plane]; gx: [planes, in_plane].
template <class T>
__device__ void max_pool_backward_scatter(const T* __restrict__ gy, const i64* __restrict__ indices,
                                          T* __restrict__ gx, i64 planes, i64 in_plane, i64 out_plane) {
  MC_FOR(p, planes) {
    T* g = gx + p * in_plane;
    for (i64 i = 0; i < in_plane; ++i) g[i] = T(0);
    for (i64 o = 0; o < out_plane; ++o) g[indices[p * out_plane + o]] += gy[p * out_plane + o];
  }
}

// ------------------------------------------------------------------ average pool

// The clipped window of output o in one dim: [lo, hi) inside the input, and `padded`, its size
// clipped to input + padding only (count_include_pad).
__device__ __forceinline__ void avg_window(i64 o, i64 in, int k, int s, int p, i64& lo, i64& hi, i64& padded) {
  lo = o * s - p;
  hi = mc_min<i64>(lo + k, in + p);
  padded = hi - lo;
  lo = mc_max<i64>(lo, 0);
  hi = mc_min<i64>(hi, in);
}

// y[p, o] = sum of the window clipped to the input / divisor (divisor if > 0, else the window
// clipped to input + padding when count_include_pad, else the window clipped to the input)
template <class T>
__device__ void avg_pool_forward(const T* __restrict__ x, T* __restrict__ y, i64 planes, i64 D, i64 H, i64 W,
                                 i64 OD, i64 OH, i64 OW, int kd, int kh, int kw, int sd, int sh, int sw, int pd,
                                 int ph, int pw, int count_include_pad, i64 divisor) {
  MC_FOR(e, planes * OD * OH * OW) {
    const i64 ow = e % OW;
    i64 r = e / OW;
    const i64 oh = r % OH;
    r /= OH;
    const i64 od = r % OD, p = r / OD;
    i64 d0, d1, pd_, h0, h1, ph_, w0, w1, pw_;
    avg_window(od, D, kd, sd, pd, d0, d1, pd_);
    avg_window(oh, H, kh, sh, ph, h0, h1, ph_);
    avg_window(ow, W, kw, sw, pw, w0, w1, pw_);
    if (d0 >= d1 || h0 >= h1 || w0 >= w1) {
      y[e] = T(0);
      continue;
    }
    const T* xp = x + p * D * H * W;
    T sum = T(0);
    for (i64 d = d0; d < d1; ++d)
      for (i64 h = h0; h < h1; ++h)
        for (i64 w = w0; w < w1; ++w) sum += xp[(d * H + h) * W + w];
    const i64 count = divisor > 0 ? divisor : count_include_pad ? pd_ * ph_ * pw_ : (d1 - d0) * (h1 - h0) * (w1 - w0);
    y[e] = sum / static_cast<T>(count);
  }
}

// The outputs o of one dim whose window [o*s - p, o*s - p + k) holds input index i.
__device__ __forceinline__ void avg_outputs(i64 i, i64 out, int k, int s, int p, i64& lo, i64& hi) {
  lo = mc_max<i64>(0, mc_floordiv(i + p - k + s, s));
  hi = mc_min<i64>(out - 1, mc_floordiv(i + p, s));
}

// gx[p, i] = sum over the outputs o whose clipped window holds i of gy[p, o] / count(o)
template <class T>
__device__ void avg_pool_backward(const T* __restrict__ gy, T* __restrict__ gx, i64 planes, i64 D, i64 H, i64 W,
                                  i64 OD, i64 OH, i64 OW, int kd, int kh, int kw, int sd, int sh, int sw, int pd,
                                  int ph, int pw, int count_include_pad, i64 divisor) {
  MC_FOR(e, planes * D * H * W) {
    const i64 w = e % W;
    i64 r = e / W;
    const i64 h = r % H;
    r /= H;
    const i64 d = r % D, p = r / D;
    i64 od_lo, od_hi, oh_lo, oh_hi, ow_lo, ow_hi;
    avg_outputs(d, OD, kd, sd, pd, od_lo, od_hi);
    avg_outputs(h, OH, kh, sh, ph, oh_lo, oh_hi);
    avg_outputs(w, OW, kw, sw, pw, ow_lo, ow_hi);
    const T* gp = gy + p * OD * OH * OW;
    T acc = T(0);
    for (i64 od = od_lo; od <= od_hi; ++od) {
      i64 d0, d1, pd_;
      avg_window(od, D, kd, sd, pd, d0, d1, pd_);
      if (d < d0 || d >= d1) continue;
      for (i64 oh = oh_lo; oh <= oh_hi; ++oh) {
        i64 h0, h1, ph_;
        avg_window(oh, H, kh, sh, ph, h0, h1, ph_);
        if (h < h0 || h >= h1) continue;
        for (i64 ow = ow_lo; ow <= ow_hi; ++ow) {
          i64 w0, w1, pw_;
          avg_window(ow, W, kw, sw, pw, w0, w1, pw_);
          if (w < w0 || w >= w1) continue;
          const i64 count = divisor > 0 ? divisor
                            : count_include_pad ? pd_ * ph_ * pw_
                                                : (d1 - d0) * (h1 - h0) * (w1 - w0);
          acc += gp[(od * OH + oh) * OW + ow] / static_cast<T>(count);
        }
      }
    }
    gx[e] = acc;
  }
}

// ------------------------------------------------------------------ adaptive average pool

__device__ __forceinline__ i64 adaptive_start(i64 o, i64 in, i64 out) { return (o * in) / out; }
__device__ __forceinline__ i64 adaptive_stop(i64 o, i64 in, i64 out) { return ((o + 1) * in + out - 1) / out; }

// y[p, o] = mean of x[p, floor(o*I/O) : ceil((o+1)*I/O)] in each spatial dim
template <class T>
__device__ void adaptive_avg_pool_forward(const T* __restrict__ x, T* __restrict__ y, i64 planes, i64 D, i64 H,
                                          i64 W, i64 OD, i64 OH, i64 OW) {
  MC_FOR(e, planes * OD * OH * OW) {
    const i64 ow = e % OW;
    i64 r = e / OW;
    const i64 oh = r % OH;
    r /= OH;
    const i64 od = r % OD, p = r / OD;
    const i64 d0 = adaptive_start(od, D, OD), d1 = adaptive_stop(od, D, OD);
    const i64 h0 = adaptive_start(oh, H, OH), h1 = adaptive_stop(oh, H, OH);
    const i64 w0 = adaptive_start(ow, W, OW), w1 = adaptive_stop(ow, W, OW);
    const T* xp = x + p * D * H * W;
    T sum = T(0);
    for (i64 d = d0; d < d1; ++d)
      for (i64 h = h0; h < h1; ++h)
        for (i64 w = w0; w < w1; ++w) sum += xp[(d * H + h) * W + w];
    y[e] = sum / static_cast<T>((d1 - d0) * (h1 - h0) * (w1 - w0));
  }
}

// The outputs o with start(o) <= i < stop(o): o in [floor(i*O/I), ceil((i+1)*O/I) - 1], checked.
__device__ __forceinline__ void adaptive_outputs(i64 i, i64 in, i64 out, i64& lo, i64& hi) {
  lo = mc_max<i64>(0, (i * out) / in - 1);
  hi = mc_min<i64>(out - 1, ((i + 1) * out + in - 1) / in);
}

template <class T>
__device__ void adaptive_avg_pool_backward(const T* __restrict__ gy, T* __restrict__ gx, i64 planes, i64 D, i64 H,
                                           i64 W, i64 OD, i64 OH, i64 OW) {
  MC_FOR(e, planes * D * H * W) {
    const i64 w = e % W;
    i64 r = e / W;
    const i64 h = r % H;
    r /= H;
    const i64 d = r % D, p = r / D;
    i64 od_lo, od_hi, oh_lo, oh_hi, ow_lo, ow_hi;
    adaptive_outputs(d, D, OD, od_lo, od_hi);
    adaptive_outputs(h, H, OH, oh_lo, oh_hi);
    adaptive_outputs(w, W, OW, ow_lo, ow_hi);
    const T* gp = gy + p * OD * OH * OW;
    T acc = T(0);
    for (i64 od = od_lo; od <= od_hi; ++od) {
      const i64 d0 = adaptive_start(od, D, OD), d1 = adaptive_stop(od, D, OD);
      if (d < d0 || d >= d1) continue;
      for (i64 oh = oh_lo; oh <= oh_hi; ++oh) {
        const i64 h0 = adaptive_start(oh, H, OH), h1 = adaptive_stop(oh, H, OH);
        if (h < h0 || h >= h1) continue;
        for (i64 ow = ow_lo; ow <= ow_hi; ++ow) {
          const i64 w0 = adaptive_start(ow, W, OW), w1 = adaptive_stop(ow, W, OW);
          if (w < w0 || w >= w1) continue;
          acc += gp[(od * OH + oh) * OW + ow] / static_cast<T>((d1 - d0) * (h1 - h0) * (w1 - w0));
        }
      }
    }
    gx[e] = acc;
  }
}

#define MC_GEOM_PARAMS i64 planes, i64 D, i64 H, i64 W, i64 OD, i64 OH, i64 OW
#define MC_GEOM_ARGS planes, D, H, W, OD, OH, OW
#define MC_WIN_PARAMS int kd, int kh, int kw, int sd, int sh, int sw, int pd, int ph, int pw
#define MC_WIN_ARGS kd, kh, kw, sd, sh, sw, pd, ph, pw

#define MC_POOL(T, S)                                                                                          \
  MC_EXPORT(max_pool_forward_##S,                                                                              \
            (const T* x, T* y, i64* indices, MC_GEOM_PARAMS, MC_WIN_PARAMS, int dd, int dh, int dw),             \
            max_pool_forward<T>(x, y, indices, MC_GEOM_ARGS, MC_WIN_ARGS, dd, dh, dw))                          \
  MC_EXPORT(max_pool_backward_##S,                                                                             \
            (const T* gy, const i64* indices, T* gx, MC_GEOM_PARAMS, MC_WIN_PARAMS, int dd, int dh, int dw),     \
            max_pool_backward<T>(gy, indices, gx, MC_GEOM_ARGS, MC_WIN_ARGS, dd, dh, dw))                       \
  MC_EXPORT(max_pool_backward_scatter_##S, (const T* gy, const i64* indices, T* gx, i64 planes, i64 in_plane,   \
                                            i64 out_plane),                                                     \
            max_pool_backward_scatter<T>(gy, indices, gx, planes, in_plane, out_plane))                         \
  MC_EXPORT(avg_pool_forward_##S,                                                                              \
            (const T* x, T* y, MC_GEOM_PARAMS, MC_WIN_PARAMS, int count_include_pad, i64 divisor),              \
            avg_pool_forward<T>(x, y, MC_GEOM_ARGS, MC_WIN_ARGS, count_include_pad, divisor))                   \
  MC_EXPORT(avg_pool_backward_##S,                                                                             \
            (const T* gy, T* gx, MC_GEOM_PARAMS, MC_WIN_PARAMS, int count_include_pad, i64 divisor),            \
            avg_pool_backward<T>(gy, gx, MC_GEOM_ARGS, MC_WIN_ARGS, count_include_pad, divisor))                \
  MC_EXPORT(adaptive_avg_pool_forward_##S, (const T* x, T* y, MC_GEOM_PARAMS),                                 \
            adaptive_avg_pool_forward<T>(x, y, MC_GEOM_ARGS))                                                   \
  MC_EXPORT(adaptive_avg_pool_backward_##S, (const T* gy, T* gx, MC_GEOM_PARAMS),                              \
            adaptive_avg_pool_backward<T>(gy, gx, MC_GEOM_ARGS))

MC_POOL(float, f32)
MC_POOL(double, f64)

MC_EXPORT(max_pool_check_indices,
          (const i64* indices, int* flag, MC_GEOM_PARAMS, MC_WIN_PARAMS, int dd, int dh, int dw),
          check_indices(indices, flag, MC_GEOM_ARGS, MC_WIN_ARGS, dd, dh, dw))
