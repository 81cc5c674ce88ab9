// The output rows of a pad (constant, reflect, replicate, circular of the last three dims), shared by
// the reference and the streaming AVX2 kernel so that both copy the same sources.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace medconv {
namespace {  // internal linkage: each ISA's file keeps the copy compiled with its flags

// The input index that output index o (of a dim padded by `before`) reads, or -1 for "constant".
inline int64_t pad_source(int64_t o, int64_t before, int64_t n, PadMode mode) {
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

// y: [rows, OW] with rows = outer * OD * OH; y[p, od, oh, ow] = x[p, src(od), src(oh), src(ow)], or
// value where a source is outside (constant mode).
template <class T>
struct PadRows {
  const PadShape& s;
  const T* x;
  PadMode mode;
  T value;
  int64_t OD, OH, OW, rows;
  int64_t w_lo, w_hi;  // the interior run of a row: outputs [w_lo, w_hi) read x[w - before] contiguously

  PadRows(const PadShape& shape, const T* input, PadMode m, T v)
      : s(shape), x(input), mode(m), value(v),
        OD(shape.D + shape.before[0] + shape.after[0]),
        OH(shape.H + shape.before[1] + shape.after[1]),
        OW(shape.W + shape.before[2] + shape.after[2]),
        rows(shape.outer * OD * OH),
        w_lo(std::max<int64_t>(0, shape.before[2])),
        w_hi(std::max(w_lo, std::min(OW, shape.W + shape.before[2]))) {}

  // Outputs [ow0, ow1) of row r to dst[0, ow1 - ow0).
  void write(int64_t r, int64_t ow0, int64_t ow1, T* dst) const {
    const int64_t oh = r % OH, od = (r / OH) % OD, p = r / (OH * OD);
    const int64_t d = pad_source(od, s.before[0], s.D, mode);
    const int64_t h = pad_source(oh, s.before[1], s.H, mode);
    if (d < 0 || h < 0) {
      std::fill(dst, dst + (ow1 - ow0), value);
      return;
    }
    const T* in = x + ((p * s.D + d) * s.H + h) * s.W;
    auto edge = [&](int64_t ow) {
      const int64_t w = pad_source(ow, s.before[2], s.W, mode);
      return w < 0 ? value : in[w];
    };
    int64_t ow = ow0;
    for (; ow < std::min(ow1, w_lo); ++ow) *dst++ = edge(ow);
    const int64_t hi = std::min(ow1, w_hi);
    if (hi > ow) {
      std::memcpy(dst, in + (ow - s.before[2]), static_cast<size_t>(hi - ow) * sizeof(T));
      dst += hi - ow;
      ow = hi;
    }
    for (; ow < ow1; ++ow) *dst++ = edge(ow);
  }
};

}  // namespace
}  // namespace medconv
