// Padding of the last three dims (constant, reflect, replicate, circular) and its gradient, as
// cpp/pad_ref.cpp and cpp/pad_backward_ref.cpp. Modes are medconv._core.PAD_MODES:
// constant=0, reflect=1, replicate=2, circular=3. A negative `before` / `after` crops (constant).
#include "common.cuh"

// The input index that output index o (of a dim of size n padded by `before`) reads, or -1 for
// the constant.
__device__ __forceinline__ i64 pad_source(i64 o, i64 before, i64 n, int mode) {
  const i64 i = o - before;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 1: return i < 0 ? -i : 2 * (n - 1) - i;
    case 2: return i < 0 ? 0 : n - 1;
    case 3: return ((i % n) + n) % n;
  }
  return -1;
}

// x: [outer, D, H, W], y: [outer, OD, OH, OW]
// y[p, od, oh, ow] = x[p, src(od), src(oh), src(ow)], or value where a source is outside (constant)
template <class T>
__device__ void pad_forward(const T* __restrict__ x, T* __restrict__ y, i64 outer, i64 D, i64 H, i64 W, i64 bd,
                            i64 bh, i64 bw, i64 OD, i64 OH, i64 OW, int mode, T value) {
  MC_FOR(e, outer * OD * OH * OW) {
    const i64 ow = e % OW;
    i64 r = e / OW;
    const i64 oh = r % OH;
    r /= OH;
    const i64 od = r % OD, p = r / OD;
    const i64 d = pad_source(od, bd, D, mode), h = pad_source(oh, bh, H, mode), w = pad_source(ow, bw, W, mode);
    y[e] = (d < 0 || h < 0 || w < 0) ? value : x[((p * D + d) * H + h) * W + w];
  }
}

// The output positions of one dim that read input index i: a range [lo, hi) for replicate, else
// up to three single positions (deduplicated, each checked with pad_source).
struct PadTaps {
  i64 lo, hi;   // replicate: j in [lo, hi)
  i64 j[3];
  int n;        // other modes: j[0..n)
  __device__ __forceinline__ i64 count() const { return n < 0 ? hi - lo : n; }
  __device__ __forceinline__ i64 at(i64 a) const { return n < 0 ? lo + a : j[a]; }
};

__device__ __forceinline__ PadTaps pad_taps(i64 i, i64 n, i64 before, i64 n_out, int mode) {
  PadTaps t;
  t.lo = t.hi = 0;
  t.n = 0;
  if (mode == 2) {  // replicate: the edges collect every padded position beyond them
    t.n = -1;
    t.lo = i == 0 ? 0 : i + before;
    t.hi = i == n - 1 ? n_out : i + before + 1;
    t.lo = mc_max<i64>(t.lo, 0);
    t.hi = mc_min<i64>(t.hi, n_out);
    if (t.hi < t.lo) t.hi = t.lo;
    return t;
  }
  // constant: i + before; reflect: also before - i and before + 2(n-1) - i; circular: i + before +- n
  i64 cand[3] = {i + before, i + before, i + before};
  if (mode == 1) cand[1] = before - i, cand[2] = before + 2 * (n - 1) - i;
  if (mode == 3) cand[1] = i + before - n, cand[2] = i + before + n;
  for (int a = 0; a < 3; ++a) {
    const i64 j = cand[a];
    if (j < 0 || j >= n_out || pad_source(j, before, n, mode) != i) continue;
    bool seen = false;
    for (int b = 0; b < t.n; ++b) seen = seen || t.j[b] == j;
    if (!seen) t.j[t.n++] = j;
  }
  // keep them in increasing order (a fixed summation order)
  for (int a = 1; a < t.n; ++a)
    for (int b = a; b > 0 && t.j[b - 1] > t.j[b]; --b) {
      const i64 s = t.j[b];
      t.j[b] = t.j[b - 1];
      t.j[b - 1] = s;
    }
  return t;
}

// gy: [outer, OD, OH, OW], gx: [outer, D, H, W]; gx[p, i] = sum of gy[p, j] over the output
// positions j that read input position i. One thread per input element (no atomics).
template <class T>
__device__ void pad_backward(const T* __restrict__ gy, T* __restrict__ gx, i64 outer, i64 D, i64 H, i64 W, i64 bd,
                             i64 bh, i64 bw, i64 OD, i64 OH, i64 OW, int mode) {
  MC_FOR(e, outer * D * H * W) {
    const i64 w = e % W;
    i64 r = e / W;
    const i64 h = r % H;
    r /= H;
    const i64 d = r % D, p = r / D;
    const PadTaps td = pad_taps(d, D, bd, OD, mode), th = pad_taps(h, H, bh, OH, mode), tw = pad_taps(w, W, bw, OW, mode);
    const T* g = gy + p * OD * OH * OW;
    T acc = T(0);
    for (i64 a = 0; a < td.count(); ++a)
      for (i64 b = 0; b < th.count(); ++b) {
        const T* row = g + (td.at(a) * OH + th.at(b)) * OW;
        for (i64 c = 0; c < tw.count(); ++c) acc += row[tw.at(c)];
      }
    gx[e] = acc;
  }
}

#define MC_PAD(T, S)                                                                                          \
  MC_EXPORT(pad_forward_##S,                                                                                  \
            (const T* x, T* y, i64 outer, i64 D, i64 H, i64 W, i64 bd, i64 bh, i64 bw, i64 OD, i64 OH, i64 OW,  \
             int mode, T value),                                                                              \
            pad_forward<T>(x, y, outer, D, H, W, bd, bh, bw, OD, OH, OW, mode, value))                        \
  MC_EXPORT(pad_backward_##S,                                                                                 \
            (const T* gy, T* gx, i64 outer, i64 D, i64 H, i64 W, i64 bd, i64 bh, i64 bw, i64 OD, i64 OH, i64 OW, \
             int mode),                                                                                       \
            pad_backward<T>(gy, gx, outer, D, H, W, bd, bh, bw, OD, OH, OW, mode))

MC_PAD(float, f32)
MC_PAD(double, f64)
