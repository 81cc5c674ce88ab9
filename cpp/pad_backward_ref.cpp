// Pad gradient, the portable reference: each output position adds its gradient to the input
// position it read (none for constant padding); one thread per plane.
#include <algorithm>
#include <vector>

#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {

namespace {
// For each output position j of one dim, the input position it reads, or -1 (the constant).
std::vector<int64_t> source_map(int64_t size, int64_t before, int64_t after, PadMode mode) {
  const int64_t n_out = std::max<int64_t>(0, size + before + after);
  std::vector<int64_t> m(n_out, -1);
  for (int64_t j = 0; j < n_out; ++j) {
    int64_t i = j - before;
    if (i < 0 || i >= size) {
      if (size <= 0) continue;
      switch (mode) {
        case PadMode::constant: i = -1; break;
        case PadMode::reflect: i = i < 0 ? -i : 2 * (size - 1) - i; break;
        case PadMode::replicate: i = std::min(std::max<int64_t>(i, 0), size - 1); break;
        case PadMode::circular: i = ((i % size) + size) % size; break;
      }
      if (i < 0 || i >= size) i = -1;
    }
    m[j] = i;
  }
  return m;
}
}  // namespace

// gy: [outer, D + bd + ad, H + bh + ah, W + bw + aw], gx: [outer, D, H, W]
// gx[p, i] = sum_{j : source(j) = i} gy[p, j]
template <class T>
void pad_backward_ref(const PadShape& s, const T* gy, T* gx, PadMode mode) {
  const auto md = source_map(s.D, s.before[0], s.after[0], mode);
  const auto mh = source_map(s.H, s.before[1], s.after[1], mode);
  const auto mw = source_map(s.W, s.before[2], s.after[2], mode);
  const int64_t OD = static_cast<int64_t>(md.size()), OH = static_cast<int64_t>(mh.size());
  const int64_t OW = static_cast<int64_t>(mw.size());
  const int64_t in_plane = s.D * s.H * s.W, out_plane = OD * OH * OW;
  parallel_for(s.outer, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out_plane)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* g = gx + p * in_plane;
      const T* src = gy + p * out_plane;
      std::fill(g, g + in_plane, T(0));
      for (int64_t d = 0; d < OD; ++d) {
        if (md[d] < 0) continue;
        for (int64_t h = 0; h < OH; ++h) {
          if (mh[h] < 0) continue;
          T* grow = g + (md[d] * s.H + mh[h]) * s.W;
          const T* row = src + (d * OH + h) * OW;
          for (int64_t w = 0; w < OW; ++w)
            if (mw[w] >= 0) grow[mw[w]] += row[w];
        }
      }
    }
  });
}

template void pad_backward_ref<float>(const PadShape&, const float*, float*, PadMode);
template void pad_backward_ref<double>(const PadShape&, const double*, double*, PadMode);

}  // namespace medconv
