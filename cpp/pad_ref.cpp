// Padding of the last three dims (constant, reflect, replicate, circular), one output row per task.
#include "pad_rows.h"
#include "parallel.h"

namespace medconv {

// y[p, od, oh, ow] = x[p, src(od), src(oh), src(ow)], or value where a source is outside (constant)
template <class T>
void pad_ref(const PadShape& s, const T* x, T* y, PadMode mode, T value) {
  const PadRows g = pad_rows(s);
  parallel_for(s.outer * g.OD * g.OH, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) pad_row(s, g, x, r, y + r * g.OW, mode, value);
  });
}

template void pad_ref<float>(const PadShape&, const float*, float*, PadMode, float);
template void pad_ref<double>(const PadShape&, const double*, double*, PadMode, double);

}  // namespace medconv
