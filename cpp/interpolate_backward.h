// The gradient of a resampling as the transpose of its separable passes: gy's D axis, then H,
// then W, each input index summing the outputs that tap it (in output order, from 0, each weight
// multiplied separately: no fused multiply-adds). The D and H passes add whole rows; W, last, runs
// over data the other two have already shrunk. Plain loops instantiated by
// interpolate_ref.cpp (portable flags) and interpolate_avx2.cpp (wider vectors, the same bits);
// internal linkage, so each file keeps its own code.
#pragma once
#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "aligned.h"
#include "interpolate_taps.h"
#include "parallel.h"

namespace medconv {
namespace {

// For each input index i of an axis: the outputs that tap it and their weights, in output order
// (an output's first tap before its second). ntaps 1: weights of 1, never multiplied.
template <class T>
struct Contributors {
  std::vector<int64_t> start, out;  // input i: entries [start[i], start[i + 1])
  std::vector<T> weight;
  bool identity;                    // every output taps the input of its own index, weight 1
};

template <class T>
Contributors<T> contributors(const Taps<T>& t, int64_t in, int64_t out, int ntaps) {
  Contributors<T> c;
  c.identity = ntaps == 1 && in == out;
  for (int64_t o = 0; c.identity && o < out; ++o) c.identity = t.i0[o] == o;
  c.start.assign(in + 1, 0);
  for (int64_t o = 0; o < out; ++o)
    for (int k = 0; k < ntaps; ++k) ++c.start[(k ? t.i1[o] : t.i0[o]) + 1];
  for (int64_t i = 0; i < in; ++i) c.start[i + 1] += c.start[i];
  c.out.resize(c.start[in]);
  c.weight.resize(c.start[in]);
  std::vector<int64_t> fill(c.start.begin(), c.start.end() - 1);
  for (int64_t o = 0; o < out; ++o)
    for (int k = 0; k < ntaps; ++k) {
      const int64_t e = fill[k ? t.i1[o] : t.i0[o]]++;
      c.out[e] = o;
      c.weight[e] = ntaps == 1 ? T(1) : (k ? t.l1[o] : t.l0[o]);
    }
  return c;
}

// The W pass as a dense table: for k < K (the most contributors any input has), entry [k][i] is
// input i's k-th contributor (index, weight), or a weight of 0 on a slot past the row holding 0.
// Adding that +0 changes no sum (each starts from +0, so none is ever -0), and k-major order makes
// the loop over i contiguous: the compiler gathers 4 or 8 inputs at once.
template <class T>
struct DenseTaps {
  int64_t K = 0;
  std::vector<int32_t> index;  // [K][in]
  std::vector<T> weight;       // [K][in]
};

template <class T>
DenseTaps<T> dense_taps(const Contributors<T>& c, int64_t in, int64_t zero_slot) {
  DenseTaps<T> t;
  for (int64_t i = 0; i < in; ++i) t.K = std::max(t.K, c.start[i + 1] - c.start[i]);
  t.index.assign(t.K * in, static_cast<int32_t>(zero_slot));
  t.weight.assign(t.K * in, T(0));
  for (int64_t i = 0; i < in; ++i)
    for (int64_t e = c.start[i]; e < c.start[i + 1]; ++e) {
      t.index[(e - c.start[i]) * in + i] = static_cast<int32_t>(c.out[e]);
      t.weight[(e - c.start[i]) * in + i] = c.weight[e];
    }
  return t;
}

// d[j] += w * s[j] (or s[j] unweighted), j < n
template <class T>
inline void add_row(T* d, const T* s, T w, bool weighted, int64_t n) {
  if (weighted)
    for (int64_t j = 0; j < n; ++j) d[j] += w * s[j];
  else
    for (int64_t j = 0; j < n; ++j) d[j] += s[j];
}

// d[i] += w[i] * s[index[i]] (or s[index[i]] unweighted), i < n; d apart from s (restrict: the loop
// then vectorises with gathers)
template <class T>
inline void add_gathered(T* __restrict d, const T* __restrict s, const int32_t* __restrict index,
                         const T* __restrict w, bool weighted, int64_t n) {
  if (weighted)
    for (int64_t i = 0; i < n; ++i) d[i] += w[i] * s[index[i]];
  else
    for (int64_t i = 0; i < n; ++i) d[i] += s[index[i]];
}

// Where the separable passes run (in every ISA's kernel, for the same bits): linear upsamplings,
// whose inputs gather several outputs each (bilinear x2 of 8x32x128x128: 3x faster than the
// scatter); downsamplings and nearest modes keep the scatter (0.6-0.9x here).
template <class T>
bool separable_backward_pays(const InterpShape& s, const AllTaps<T>& a) {
  if (s.OW >= INT32_MAX) return false;  // the W table's int32 indices, its zero slot at OW
  return (a.nd == 2 && s.OD > s.D) || (a.nh == 2 && s.OH > s.H) || (a.nw == 2 && s.OW > s.W);
}

// Each input row (plane, id, ih) is computed alone, its passes fused: a row of the H pass sums the
// D pass's rows for its taps oh (each recomputed from gy, not stored), and the W pass reads that
// row from L1 (three passes over whole planes, through memory: bilinear x2 of 8x32x128x128 1.25x slower).
template <class T>
void interpolate_backward_separable(const InterpShape& s, const AllTaps<T>& a, const T* gy, T* gx) {
  const Contributors<T> cd = contributors(a.d, s.D, s.OD, a.nd), ch = contributors(a.h, s.H, s.OH, a.nh),
                        cw = contributors(a.w, s.W, s.OW, a.nw);
  const DenseTaps<T> tw = dense_taps(cw, s.W, s.OW);
  const int64_t out_plane = s.OD * s.OH * s.OW, rows = s.planes * s.D * s.H;
  const bool wd = a.nd == 2, wh = a.nh == 2, ww = a.nw == 2;
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, s.OW * 4)), [&](int64_t begin, int64_t end) {
    T* acc = thread_scratch<T>(s.OW + 1, 1);  // the H pass's row, then a zero at OW
    T* tmp = thread_scratch<T>(s.OW, 2);      // a D pass row
    for (int64_t r = begin; r < end; ++r) {
      const int64_t ih = r % s.H, id = (r / s.H) % s.D, p = r / (s.H * s.D);
      const T* gp = gy + p * out_plane;
      // the D pass's row (id, oh)
      auto d_row = [&](int64_t oh) -> const T* {
        if (cd.identity) return gp + (id * s.OH + oh) * s.OW;
        std::fill(tmp, tmp + s.OW, T(0));
        for (int64_t e = cd.start[id]; e < cd.start[id + 1]; ++e)
          add_row(tmp, gp + (cd.out[e] * s.OH + oh) * s.OW, cd.weight[e], wd, s.OW);
        return tmp;
      };
      const T* row;
      if (ch.identity) {
        row = d_row(ih);
      } else {
        std::fill(acc, acc + s.OW, T(0));
        for (int64_t e = ch.start[ih]; e < ch.start[ih + 1]; ++e)
          add_row(acc, d_row(ch.out[e]), ch.weight[e], wh, s.OW);
        row = acc;
      }
      T* dst = gx + r * s.W;
      if (cw.identity) {
        std::copy(row, row + s.W, dst);
        continue;
      }
      if (row != acc) std::copy(row, row + s.OW, acc);
      acc[s.OW] = T(0);
      std::fill(dst, dst + s.W, T(0));
      for (int64_t k = 0; k < tw.K; ++k)
        add_gathered(dst, acc, tw.index.data() + k * s.W, tw.weight.data() + k * s.W, ww, s.W);
    }
  });
}

}  // namespace
}  // namespace medconv
