// The windows of average and adaptive average pooling, clipped to the input, and their divisors: one
// definition for the forward (pool_ref.cpp, pool_avx2.cpp, adaptive_pool_avx2.cpp) and the backward
// (pool_backward_ref.cpp).
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels.h"

namespace medconv {

// The window rows of the outputs (od, oh, *): d and h clipped to the input, and the count of the
// window's (d, h) positions inside input + padding (count_include_pad's divisor, per column).
struct AvgRows {
  int64_t d0, d1, h0, h1;
  int64_t dh_padded;
  bool empty() const { return d0 >= d1 || h0 >= h1; }
};

inline AvgRows avg_rows(const PoolShape& s, int64_t od, int64_t oh) {
  AvgRows r;
  r.d0 = od * s.stride[0] - s.pad[0];
  r.h0 = oh * s.stride[1] - s.pad[1];
  r.d1 = std::min(r.d0 + s.kernel[0], s.D + s.pad[0]);
  r.h1 = std::min(r.h0 + s.kernel[1], s.H + s.pad[1]);
  r.dh_padded = (r.d1 - r.d0) * (r.h1 - r.h0);
  r.d0 = std::max<int64_t>(r.d0, 0);
  r.h0 = std::max<int64_t>(r.h0, 0);
  r.d1 = std::min(r.d1, s.D);
  r.h1 = std::min(r.h1, s.H);
  return r;
}

// Output ow's columns clipped to the input, and its divisor: `divisor` when > 0, else the window
// clipped to input + padding (count_include_pad) or to the input.
struct AvgCols {
  int64_t w0, w1, count;
};

inline AvgCols avg_cols(const PoolShape& s, const AvgRows& r, int64_t ow, bool count_include_pad, int64_t divisor) {
  AvgCols c;
  c.w0 = ow * s.stride[2] - s.pad[2];
  c.w1 = std::min(c.w0 + s.kernel[2], s.W + s.pad[2]);
  const int64_t padded = r.dh_padded * (c.w1 - c.w0);
  c.w0 = std::max<int64_t>(c.w0, 0);
  c.w1 = std::min(c.w1, s.W);
  c.count = divisor > 0 ? divisor : count_include_pad ? padded : (r.d1 - r.d0) * (r.h1 - r.h0) * (c.w1 - c.w0);
  return c;
}

// Adaptive pooling: output o's window [start, stop) along an axis of `in` inputs and `out` outputs, as torch's.
inline int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return o * in / out; }
inline int64_t adaptive_stop(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

}  // namespace medconv
