// Padding of the last three dims (constant, reflect, replicate, circular), one output row per task.
#include <algorithm>
#include <cstring>

#include "kernels.h"
#include "parallel.h"

namespace medconv {

namespace {
// The input index that output index o (of a dim padded by `before`) reads, or -1 for "constant".
inline int64_t source_index(int64_t o, int64_t before, int64_t n, PadMode mode) {
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
}  // namespace

// y[p, od, oh, ow] = x[p, src(od), src(oh), src(ow)], or value where a source is outside (constant)
template <class T>
void pad_ref(const PadShape& s, const T* x, T* y, PadMode mode, T value) {
  const int64_t OD = s.D + s.before[0] + s.after[0];
  const int64_t OH = s.H + s.before[1] + s.after[1];
  const int64_t OW = s.W + s.before[2] + s.after[2];
  const int64_t rows = s.outer * OD * OH;
  // The interior run of a row: outputs [w_lo, w_hi) read x[w - before] contiguously.
  const int64_t w_lo = std::max<int64_t>(0, s.before[2]);
  const int64_t w_hi = std::max(w_lo, std::min(OW, s.W + s.before[2]));
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % OH, od = (r / OH) % OD, p = r / (OH * OD);
      T* out = y + r * OW;
      const int64_t d = source_index(od, s.before[0], s.D, mode);
      const int64_t h = source_index(oh, s.before[1], s.H, mode);
      if (d < 0 || h < 0) {
        std::fill(out, out + OW, value);
        continue;
      }
      const T* in = x + ((p * s.D + d) * s.H + h) * s.W;
      for (int64_t ow = 0; ow < w_lo; ++ow) {
        const int64_t w = source_index(ow, s.before[2], s.W, mode);
        out[ow] = w < 0 ? value : in[w];
      }
      if (w_hi > w_lo) std::memcpy(out + w_lo, in + (w_lo - s.before[2]), (w_hi - w_lo) * sizeof(T));
      for (int64_t ow = w_hi; ow < OW; ++ow) {
        const int64_t w = source_index(ow, s.before[2], s.W, mode);
        out[ow] = w < 0 ? value : in[w];
      }
    }
  });
}

template void pad_ref<float>(const PadShape&, const float*, float*, PadMode, float);
template void pad_ref<double>(const PadShape&, const double*, double*, PadMode, double);

}  // namespace medconv
