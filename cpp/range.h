// Index arithmetic shared by the sliding-window kernels.
#pragma once
#include <algorithm>
#include <cstdint>

namespace medconv {

struct Range {
  int64_t begin = 0, end = 0;
};

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// The outputs o in [0, n_out) whose tap i = o*stride - pad + offset lies in [0, n_in).
inline Range valid_outputs(int64_t n_out, int64_t n_in, int64_t stride, int64_t pad, int64_t offset) {
  Range r;
  r.begin = std::max<int64_t>(0, ceil_div(pad - offset, stride));
  r.end = std::min<int64_t>(n_out, floor_div(n_in - 1 + pad - offset, stride) + 1);
  if (r.end < r.begin) r.end = r.begin;
  return r;
}

}  // namespace medconv
