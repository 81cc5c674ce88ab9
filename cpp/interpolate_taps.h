// The taps of torch's resampling (ATen's UpSample.h): per dim, each output index reads one input
// (nearest) or two (linear) with these weights. Shared by interpolate_ref.cpp and
// interpolate_avx2.cpp, which agree bit for bit.
#pragma once
#include <cstdint>
#include <vector>

#include "nn_kernels.h"

namespace medconv {

template <class T>
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<T> l0, l1;
};

template <class T>
struct AllTaps {
  Taps<T> d, h, w;
  int nd, nh, nw;  // taps per dim: 1 or 2
};

// The taps of output row (od, oh): its input planes and rows and their weights.
template <class T>
struct RowTaps {
  int64_t id[2], ih[2];
  T ld[2], lh[2];
};

// Defined in interpolate_ref.cpp, compiled with the portable flags: their arithmetic (no fused
// multiply-adds) is the same whichever kernel asks.
template <class T> AllTaps<T> all_taps(const InterpShape& s);
template <class T> RowTaps<T> row_taps(const AllTaps<T>& a, int64_t od, int64_t oh);
// Output ow of row rt of the plane xp (x: [D, H, W]): sum over taps a, b, c of
// ld[a] * (lh[b] * (lw[c] * x[id[a], ih[b], iw[c]])), each sum starting from 0.
template <class T>
T interpolate_point(const InterpShape& s, const AllTaps<T>& a, const RowTaps<T>& rt, const T* xp, int64_t ow);

}  // namespace medconv
