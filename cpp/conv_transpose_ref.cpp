// Transposed convolution forward, the portable reference: the input gradient of the conv that
// `s` describes, plus the bias. Its backward is a conv forward (input grad) and the conv weight
// gradient with the roles of x and gy swapped (see functional/backward.py).
#include <algorithm>

#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {

// x: [N, OC, OD, OH, OW], w: [OC, C/groups, KD, KH, KW], bias: [C] or null, y: [N, C, D, H, W]
// y[n, c, i] = bias[c] + sum_{oc, k, o: o*stride - pad + k*dilation = i} x[n, oc, o] * w[oc, c % Cg, k]
template <class T>
void conv_transpose_forward_ref(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  conv_backward_input_ref<T>(s, x, w, y);
  if (!bias) return;
  const int64_t plane = s.D * s.H * s.W;
  parallel_for(s.N * s.C, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, plane)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T b = bias[p % s.C];
      T* out = y + p * plane;
      for (int64_t i = 0; i < plane; ++i) out[i] += b;
    }
  });
}

template void conv_transpose_forward_ref<float>(const ConvShape&, const float*, const float*, const float*, float*);
template void conv_transpose_forward_ref<double>(const ConvShape&, const double*, const double*, const double*, double*);

}  // namespace medconv
