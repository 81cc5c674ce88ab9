// Direct convolution, the portable reference: one output row per task.
#include <algorithm>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "range.h"

namespace medconv {

// y[n, oc, od, oh, ow] = bias[oc] + sum_{ic, kd, kh, kw} w[oc, ic, kd, kh, kw]
//                        * x[n, g*Cg + ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
template <class T>
void conv_forward_ref(const ConvShape& s, const T* x, const T* w, const T* bias, T* y, Activation act) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  const int64_t rows = s.N * s.OC * s.OD * s.OH;
  const int64_t xplane = s.D * s.H * s.W;
  const int64_t kvol = s.KD * s.KH * s.KW;
  std::vector<Range> ow_range(s.KW);
  for (int64_t kw = 0; kw < s.KW; ++kw)
    ow_range[kw] = valid_outputs(s.OW, s.W, s.stride[2], s.pad[2], kw * s.dilation[2]);
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.OW * kvol * Cg)),
               [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t oh = r % s.OH, od = (r / s.OH) % s.OD, oc = (r / (s.OH * s.OD)) % s.OC;
      const int64_t n = r / (s.OH * s.OD * s.OC);
      const int64_t g = oc / OCg;
      T* out = y + r * s.OW;
      const T b = bias ? bias[oc] : T(0);
      for (int64_t ow = 0; ow < s.OW; ++ow) out[ow] = b;
      for (int64_t ic = 0; ic < Cg; ++ic) {
        const T* xc = x + (n * s.C + g * Cg + ic) * xplane;
        const T* wc = w + (oc * Cg + ic) * kvol;
        for (int64_t kd = 0; kd < s.KD; ++kd) {
          const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
          if (id < 0 || id >= s.D) continue;
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
            if (ih < 0 || ih >= s.H) continue;
            const T* in = xc + (id * s.H + ih) * s.W;
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const T wv = wc[(kd * s.KH + kh) * s.KW + kw];
              const int64_t off = kw * s.dilation[2] - s.pad[2];
              const Range ro = ow_range[kw];
              if (s.stride[2] == 1) {
                for (int64_t ow = ro.begin; ow < ro.end; ++ow) out[ow] += wv * in[ow + off];
              } else {
                for (int64_t ow = ro.begin; ow < ro.end; ++ow) out[ow] += wv * in[ow * s.stride[2] + off];
              }
            }
          }
        }
      }
      if (act == Activation::relu)
        for (int64_t ow = 0; ow < s.OW; ++ow) out[ow] = out[ow] > T(0) ? out[ow] : (out[ow] != out[ow] ? out[ow] : T(0));
    }
  });
}

template void conv_forward_ref<float>(const ConvShape&, const float*, const float*, const float*, float*, Activation);
template void conv_forward_ref<double>(const ConvShape&, const double*, const double*, const double*, double*, Activation);

}  // namespace medconv
