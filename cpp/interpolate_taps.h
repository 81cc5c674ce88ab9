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

// Defined in interpolate_ref.cpp, compiled with the portable flags: its arithmetic (no fused
// multiply-adds) is the same whichever kernel asks.
template <class T> AllTaps<T> all_taps(const InterpShape& s);

}  // namespace medconv
