// Convolution gradients, the portable reference: the input gradient gathered one input row per
// task, the weight gradient one weight per task, the bias gradient one channel per task.
#include <algorithm>
#include <vector>

#include "dispatch.h"
#include "nn_kernels.h"
#include "packed_gemm.h"
#include "parallel.h"
#include "range.h"

namespace medconv {

namespace {
// The output o with o*stride - pad + offset == i, or -1 when there is none inside [0, n_out).
inline int64_t source_output(int64_t i, int64_t stride, int64_t pad, int64_t offset, int64_t n_out) {
  const int64_t t = i + pad - offset;
  if (t < 0 || t % stride != 0) return -1;
  const int64_t o = t / stride;
  return o < n_out ? o : -1;
}
}  // namespace

// gy: [N, OC, OD, OH, OW], w: [OC, Cg, KD, KH, KW], gx: [N, C, D, H, W]
// gx[n, c, id, ih, iw] = sum_{oc, kd, kh, kw} w[oc, c % Cg, kd, kh, kw] * gy[n, oc, od, oh, ow]
//   where od*sd - pd + kd*dd = id (and the same for h, w)
template <class T>
void conv_backward_input_ref(const ConvShape& s, const T* gy, const T* w, T* gx) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  const int64_t rows = s.N * s.C * s.D * s.H;
  const int64_t yplane = s.OD * s.OH * s.OW;
  const int64_t kvol = s.KD * s.KH * s.KW;
  std::vector<Range> ow_range(s.KW);
  for (int64_t kw = 0; kw < s.KW; ++kw)
    ow_range[kw] = valid_outputs(s.OW, s.W, s.stride[2], s.pad[2], kw * s.dilation[2]);
  const int64_t work = std::max<int64_t>(1, s.W * OCg * kvol / std::max<int64_t>(1, s.stride[0] * s.stride[1]));
  parallel_for(rows, std::max<int64_t>(1, 4096 / work), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t ih = r % s.H, id = (r / s.H) % s.D, c = (r / (s.H * s.D)) % s.C;
      const int64_t n = r / (s.H * s.D * s.C);
      const int64_t g = c / Cg, ic = c % Cg;
      T* out = gx + r * s.W;
      for (int64_t iw = 0; iw < s.W; ++iw) out[iw] = T(0);
      for (int64_t oc = g * OCg; oc < (g + 1) * OCg; ++oc) {
        const T* gyc = gy + (n * s.OC + oc) * yplane;
        const T* wc = w + (oc * Cg + ic) * kvol;
        for (int64_t kd = 0; kd < s.KD; ++kd) {
          const int64_t od = source_output(id, s.stride[0], s.pad[0], kd * s.dilation[0], s.OD);
          if (od < 0) continue;
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t oh = source_output(ih, s.stride[1], s.pad[1], kh * s.dilation[1], s.OH);
            if (oh < 0) continue;
            const T* grow = gyc + (od * s.OH + oh) * s.OW;
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const T wv = wc[(kd * s.KH + kh) * s.KW + kw];
              const int64_t off = kw * s.dilation[2] - s.pad[2];
              const Range ro = ow_range[kw];
              if (s.stride[2] == 1) {
                for (int64_t ow = ro.begin; ow < ro.end; ++ow) out[ow + off] += wv * grow[ow];
              } else {
                for (int64_t ow = ro.begin; ow < ro.end; ++ow) out[ow * s.stride[2] + off] += wv * grow[ow];
              }
            }
          }
        }
      }
    }
  });
}

// x: [N, C, D, H, W], gy: [N, OC, OD, OH, OW], gw: [OC, Cg, KD, KH, KW]; one weight per task.
// gw[oc, ic, kd, kh, kw] = sum_{n, od, oh, ow} gy[n, oc, od, oh, ow] * x[n, g*Cg + ic, od*sd - pd + kd*dd, ...]
template <class T>
void conv_backward_weight_ref(const ConvShape& s, const T* x, const T* gy, T* gw) {
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  const int64_t kvol = s.KD * s.KH * s.KW;
  const int64_t xplane = s.D * s.H * s.W, yplane = s.OD * s.OH * s.OW;
  const int64_t total = s.OC * Cg * kvol;
  parallel_for(total, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.N * yplane)), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t kw = t % s.KW, kh = (t / s.KW) % s.KH, kd = (t / (s.KW * s.KH)) % s.KD;
      const int64_t ic = (t / kvol) % Cg, oc = t / (kvol * Cg);
      const int64_t g = oc / OCg;
      const Range rd = valid_outputs(s.OD, s.D, s.stride[0], s.pad[0], kd * s.dilation[0]);
      const Range rh = valid_outputs(s.OH, s.H, s.stride[1], s.pad[1], kh * s.dilation[1]);
      const Range rw = valid_outputs(s.OW, s.W, s.stride[2], s.pad[2], kw * s.dilation[2]);
      const int64_t off = kw * s.dilation[2] - s.pad[2];
      T acc = T(0);
      for (int64_t n = 0; n < s.N; ++n) {
        const T* xc = x + (n * s.C + g * Cg + ic) * xplane;
        const T* gyc = gy + (n * s.OC + oc) * yplane;
        for (int64_t od = rd.begin; od < rd.end; ++od) {
          const int64_t id = od * s.stride[0] - s.pad[0] + kd * s.dilation[0];
          for (int64_t oh = rh.begin; oh < rh.end; ++oh) {
            const int64_t ih = oh * s.stride[1] - s.pad[1] + kh * s.dilation[1];
            const T* in = xc + (id * s.H + ih) * s.W;
            const T* grow = gyc + (od * s.OH + oh) * s.OW;
            if (s.stride[2] == 1) {
              for (int64_t ow = rw.begin; ow < rw.end; ++ow) acc += grow[ow] * in[ow + off];
            } else {
              for (int64_t ow = rw.begin; ow < rw.end; ++ow) acc += grow[ow] * in[ow * s.stride[2] + off];
            }
          }
        }
      }
      gw[t] = acc;
    }
  });
}

template <class T>
void conv_backward_weight(const ConvShape& s, const T* x, const T* gy, T* gw) {
#if defined(MEDCONV_X86)
  const Isa isa = kernels().isa;
  if (isa == Isa::avx2 || isa == Isa::avx512) {
    conv_backward_weight_avx2<T>(s, x, gy, gw, widest_gemm(isa));
    return;
  }
#endif
  conv_backward_weight_ref<T>(s, x, gy, gw);
}

// gy: [N, C, S]; gb[c] = sum over n and s, in float64 as 8 running sums (element i of an image's
// plane to sum i % 8), added pairwise at the end: a channel of a million float gradients within a
// rounding or two of the exact sum, where one float running sum lost up to ~1e-4 of it, and 8
// independent chains of adds instead of one (S8's bias gradient, 16 x 1M: 8.2 -> 2.3 ms at 1 thread).
template <class T>
void channel_sum_ref(const T* gy, T* gb, int64_t N, int64_t C, int64_t S) {
  parallel_for(C, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * S)), [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t n = 0; n < N; ++n) {
        const T* p = gy + (n * C + c) * S;
        int64_t i = 0;
        for (; i + 8 <= S; i += 8)
          for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(p[i + k]);
        for (int k = 0; i < S; ++i, ++k) acc[k] += static_cast<double>(p[i]);
      }
      gb[c] = static_cast<T>(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    }
  });
}

#define MEDCONV_INSTANTIATE(T)                                                             \
  template void conv_backward_input_ref<T>(const ConvShape&, const T*, const T*, T*);      \
  template void conv_backward_weight_ref<T>(const ConvShape&, const T*, const T*, T*);     \
  template void conv_backward_weight<T>(const ConvShape&, const T*, const T*, T*);         \
  template void channel_sum_ref<T>(const T*, T*, int64_t, int64_t, int64_t);
MEDCONV_INSTANTIATE(float)
MEDCONV_INSTANTIATE(double)
#undef MEDCONV_INSTANTIATE

}  // namespace medconv
