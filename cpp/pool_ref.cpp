// Max, average and adaptive-average pooling, the portable reference: one output row per task.
#include <cmath>
#include <limits>

#include "kernels.h"
#include "parallel.h"
#include "pool_window.h"

namespace medconv {

namespace {
inline int64_t first_tap(int64_t start, int64_t dilation) {  // smallest start + k*dilation >= 0
  while (start < 0) start += dilation;
  return start;
}
}  // namespace

// y[p, o] = max over taps t of the window of x[p, t] (NaN wins; the index is of the last NaN,
// else of the first maximum); indices are flat into the plane [D, H, W] as in torch.
template <class T>
void max_pool_ref(const PoolShape& s, const T* x, T* y, int64_t* indices) {
  const int64_t rows = s.NC * s.OD * s.OH;
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, p = r / (s.OH * s.OD);
      const T* xp = x + p * s.D * s.H * s.W;
      const int64_t d0 = od * s.stride[0] - s.pad[0], h0 = oh * s.stride[1] - s.pad[1];
      const int64_t dend = std::min(d0 + (s.kernel[0] - 1) * s.dilation[0] + 1, s.D);
      const int64_t hend = std::min(h0 + (s.kernel[1] - 1) * s.dilation[1] + 1, s.H);
      const int64_t dfirst = first_tap(d0, s.dilation[0]), hfirst = first_tap(h0, s.dilation[1]);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const int64_t w0 = ow * s.stride[2] - s.pad[2];
        const int64_t wend = std::min(w0 + (s.kernel[2] - 1) * s.dilation[2] + 1, s.W);
        const int64_t wfirst = first_tap(w0, s.dilation[2]);
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_index = (dfirst * s.H + hfirst) * s.W + wfirst;
        for (int64_t d = dfirst; d < dend; d += s.dilation[0])
          for (int64_t h = hfirst; h < hend; h += s.dilation[1])
            for (int64_t w = wfirst; w < wend; w += s.dilation[2]) {
              const int64_t i = (d * s.H + h) * s.W + w;
              const T v = xp[i];
              if (v > best || std::isnan(v)) {
                best = v;
                best_index = i;
              }
            }
        y[r * s.OW + ow] = best;
        if (indices) indices[r * s.OW + ow] = best_index;
      }
    }
  });
}

// y[p, o] = sum of the window clipped to the input / divisor, where the divisor is
// `divisor` if > 0, else the window clipped to input + padding (count_include_pad), else the
// window clipped to the input.
template <class T>
void avg_pool_ref(const PoolShape& s, const T* x, T* y, bool count_include_pad, int64_t divisor) {
  const int64_t rows = s.NC * s.OD * s.OH;
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, p = r / (s.OH * s.OD);
      const T* xp = x + p * s.D * s.H * s.W;
      const AvgRows rw = avg_rows(s, od, oh);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const AvgCols c = avg_cols(s, rw, ow, count_include_pad, divisor);
        T* out = y + r * s.OW + ow;
        if (rw.empty() || c.w0 >= c.w1) {
          *out = T(0);
          continue;
        }
        T sum = 0;
        for (int64_t d = rw.d0; d < rw.d1; ++d)
          for (int64_t h = rw.h0; h < rw.h1; ++h)
            for (int64_t w = c.w0; w < c.w1; ++w) sum += xp[(d * s.H + h) * s.W + w];
        *out = sum / static_cast<T>(c.count);
      }
    }
  });
}

// y[p, o] = mean of x[p, floor(o*I/O) : ceil((o+1)*I/O)] in each spatial dim.
template <class T>
void adaptive_avg_pool_ref(const PoolShape& s, const T* x, T* y) {
  const int64_t rows = s.NC * s.OD * s.OH;
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, p = r / (s.OH * s.OD);
      const T* xp = x + p * s.D * s.H * s.W;
      const int64_t d0 = adaptive_start(od, s.D, s.OD), d1 = adaptive_stop(od, s.D, s.OD);
      const int64_t h0 = adaptive_start(oh, s.H, s.OH), h1 = adaptive_stop(oh, s.H, s.OH);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const int64_t w0 = adaptive_start(ow, s.W, s.OW), w1 = adaptive_stop(ow, s.W, s.OW);
        double sum = 0;  // float64 for float32 too: a global pool sums up to millions of terms
        for (int64_t d = d0; d < d1; ++d)
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) sum += xp[(d * s.H + h) * s.W + w];
        y[r * s.OW + ow] = static_cast<T>(sum / static_cast<double>((d1 - d0) * (h1 - h0) * (w1 - w0)));
      }
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                              \
  template void max_pool_ref<T>(const PoolShape&, const T*, T*, int64_t*);                  \
  template void avg_pool_ref<T>(const PoolShape&, const T*, T*, bool, int64_t);             \
  template void adaptive_avg_pool_ref<T>(const PoolShape&, const T*, T*);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
