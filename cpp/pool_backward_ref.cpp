// Pooling gradients, the portable reference: each plane's gradient is scattered by one thread,
// in output order, so the sums are the same for any thread count.
#include <algorithm>

#include "nn_kernels.h"
#include "parallel.h"
#include "pool_window.h"

namespace medconv {

// gy, indices: [planes, out_plane]; gx: [planes, in_plane]; gx[p, indices[p, o]] += gy[p, o]
template <class T>
void max_pool_backward_ref(int64_t planes, int64_t in_plane, int64_t out_plane, const T* gy, const int64_t* indices,
                           T* gx) {
  parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane + out_plane)),
               [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* g = gx + p * in_plane;
      std::fill(g, g + in_plane, T(0));
      const T* gp = gy + p * out_plane;
      const int64_t* ip = indices + p * out_plane;
      for (int64_t o = 0; o < out_plane; ++o) g[ip[o]] += gp[o];
    }
  });
}

// The backward of avg_pool_ref: each output's gradient, divided by the forward's divisor, is
// added to every input of its window (clipped to the input).
template <class T>
void avg_pool_backward_ref(const PoolShape& s, const T* gy, T* gx, bool count_include_pad, int64_t divisor) {
  const int64_t in_plane = s.D * s.H * s.W, out_plane = s.OD * s.OH * s.OW;
  parallel_for(s.NC, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane + out_plane)),
               [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* g = gx + p * in_plane;
      std::fill(g, g + in_plane, T(0));
      const T* gp = gy + p * out_plane;
      for (int64_t od = 0; od < s.OD; ++od)
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const AvgRows rw = avg_rows(s, od, oh);
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            const AvgCols c = avg_cols(s, rw, ow, count_include_pad, divisor);
            if (rw.empty() || c.w0 >= c.w1 || c.count <= 0) continue;
            const T v = gp[(od * s.OH + oh) * s.OW + ow] / static_cast<T>(c.count);
            for (int64_t d = rw.d0; d < rw.d1; ++d)
              for (int64_t h = rw.h0; h < rw.h1; ++h) {
                T* row = g + (d * s.H + h) * s.W;
                for (int64_t w = c.w0; w < c.w1; ++w) row[w] += v;
              }
          }
        }
    }
  });
}

// The backward of adaptive_avg_pool_ref: windows [floor(o*I/O), ceil((o+1)*I/O)) per dim.
template <class T>
void adaptive_avg_pool_backward_ref(const PoolShape& s, const T* gy, T* gx) {
  const int64_t in_plane = s.D * s.H * s.W, out_plane = s.OD * s.OH * s.OW;
  parallel_for(s.NC, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, in_plane + out_plane)),
               [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      T* g = gx + p * in_plane;
      std::fill(g, g + in_plane, T(0));
      const T* gp = gy + p * out_plane;
      for (int64_t od = 0; od < s.OD; ++od) {
        const int64_t d0 = adaptive_start(od, s.D, s.OD), d1 = adaptive_stop(od, s.D, s.OD);
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          const int64_t h0 = adaptive_start(oh, s.H, s.OH), h1 = adaptive_stop(oh, s.H, s.OH);
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            const int64_t w0 = adaptive_start(ow, s.W, s.OW), w1 = adaptive_stop(ow, s.W, s.OW);
            const T v = gp[(od * s.OH + oh) * s.OW + ow] / static_cast<T>((d1 - d0) * (h1 - h0) * (w1 - w0));
            for (int64_t d = d0; d < d1; ++d)
              for (int64_t h = h0; h < h1; ++h) {
                T* row = g + (d * s.H + h) * s.W;
                for (int64_t w = w0; w < w1; ++w) row[w] += v;
              }
          }
        }
      }
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                                       \
  template void max_pool_backward_ref<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, T*);   \
  template void avg_pool_backward_ref<T>(const PoolShape&, const T*, T*, bool, int64_t);             \
  template void adaptive_avg_pool_backward_ref<T>(const PoolShape&, const T*, T*);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
