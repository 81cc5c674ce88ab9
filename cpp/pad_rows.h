// One output row of the padding of the last three dims (constant, reflect, replicate, circular),
// shared by the reference (pad_ref.cpp) and the AVX2 variant (pad_avx2.cpp, streaming stores).
#pragma once
#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace medconv {

// The input index that output index o (of a dim padded by `before`) reads, or -1 for "constant".
inline int64_t pad_source_index(int64_t o, int64_t before, int64_t n, PadMode mode) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::constant: return -1;
    case PadMode::reflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PadMode::replicate: return i < 0 ? 0 : n - 1;
    case PadMode::circular: return ((i % n) + n) % n;
  }
  return -1;
}

struct PadRows {
  int64_t OD, OH, OW;   // the padded sizes
  int64_t w_lo, w_hi;   // the interior run of a row: outputs [w_lo, w_hi) read x[w - before] contiguously
};

inline PadRows pad_rows(const PadShape& s) {
  PadRows g;
  g.OD = s.D + s.before[0] + s.after[0];
  g.OH = s.H + s.before[1] + s.after[1];
  g.OW = s.W + s.before[2] + s.after[2];
  g.w_lo = std::max<int64_t>(0, s.before[2]);
  g.w_hi = std::max(g.w_lo, std::min(g.OW, s.W + s.before[2]));
  return g;
}

// out[ow] = x[p, src(od), src(oh), src(ow)] for output row r = (p, od, oh), or value where a source
// is outside (constant).
template <class T>
void pad_row(const PadShape& s, const PadRows& g, const T* x, int64_t r, T* out, PadMode mode, T value) {
  const int64_t oh = r % g.OH, od = (r / g.OH) % g.OD, p = r / (g.OH * g.OD);
  const int64_t d = pad_source_index(od, s.before[0], s.D, mode);
  const int64_t h = pad_source_index(oh, s.before[1], s.H, mode);
  if (d < 0 || h < 0) {
    std::fill(out, out + g.OW, value);
    return;
  }
  const T* in = x + ((p * s.D + d) * s.H + h) * s.W;
  for (int64_t ow = 0; ow < g.w_lo; ++ow) {
    const int64_t w = pad_source_index(ow, s.before[2], s.W, mode);
    out[ow] = w < 0 ? value : in[w];
  }
  if (g.w_hi > g.w_lo) std::memcpy(out + g.w_lo, in + (g.w_lo - s.before[2]), (g.w_hi - g.w_lo) * sizeof(T));
  for (int64_t ow = g.w_hi; ow < g.OW; ++ow) {
    const int64_t w = pad_source_index(ow, s.before[2], s.W, mode);
    out[ow] = w < 0 ? value : in[w];
  }
}

}  // namespace medconv
