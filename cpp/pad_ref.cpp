// Padding of the last three dims (constant, reflect, replicate, circular), one output row per task.
#include "kernels.h"
#include "pad_rows.h"
#include "parallel.h"

namespace medconv {

template <class T>
void pad_ref(const PadShape& s, const T* x, T* y, PadMode mode, T value) {
  const PadRows<T> out(s, x, mode, value);
  parallel_for(out.rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) out.write(r, 0, out.OW, y + r * out.OW);
  });
}

template void pad_ref<float>(const PadShape&, const float*, float*, PadMode, float);
template void pad_ref<double>(const PadShape&, const double*, double*, PadMode, double);

}  // namespace medconv
