// The input gradient of a convolution, and the transposed convolution (the same sum plus a bias),
// as stride-1 forward convolutions of gy run by the active ISA's conv_forward kernel (dispatch.h):
// they get its plans and its GEMM, Winograd and direct kernels.
//
// Along one axis with stride s, dilation d and leading padding p, gx[i] sums w[k] gy[o] over the
// taps k and outputs o with o*s - p + k*d = i. The inputs i = c + s*m of one phase c (0 <= c < s)
// take only the taps with c + p - k*d divisible by s, tap k from gy[m + e_k], e_k = (c + p - k*d)/s:
// a stride-1 correlation of gy with those taps (the largest k first: the filter flipped), dilation
// d / gcd(d, s) and leading padding -min e_k. So gx is s_d * s_h * s_w stride-1 forward convs, one
// per phase, whose outputs interleave; with stride 1 there is one, written straight into gx. A phase
// that no tap reaches gets the bias alone (or zero). A negative padding (a conv padded by more than
// its dilated kernel) takes the portable gather, conv_backward_input_ref. Where conv_subpixel.h
// applies (kernel == stride, as 2x2 stride 2; phases of up to 2 taps per axis, as 3x3 stride 2, with
// 8 or more channels), an ISA's conv_subpixel computes the phases blockwise straight into gx instead.
#include <algorithm>
#include <memory>
#include <numeric>
#include <vector>

#include "conv_subpixel.h"
#include "dispatch.h"
#include "filter_cache.h"
#include "memory.h"
#include "nn_kernels.h"
#include "parallel.h"

namespace medconv {
namespace {

// One phase c of one axis.
struct Phase {
  int64_t first = 0;           // c: the first input index of the phase
  int64_t count = 0;           // its inputs c, c + s, ... below the axis' size
  std::vector<int64_t> taps;   // kernel indices, offsets e_k increasing (k decreasing)
  int64_t pad = 0, dil = 1;    // of the stride-1 correlation
};

// The s phases of an axis: kernel K, stride s, dilation d, leading padding p, n inputs. `ok` turns
// false where a phase needs a negative padding.
std::vector<Phase> axis_phases(int64_t K, int64_t s, int64_t d, int64_t p, int64_t n, bool& ok) {
  std::vector<Phase> phases(static_cast<size_t>(s));
  for (int64_t c = 0; c < s; ++c) {
    Phase& ph = phases[c];
    ph.first = c;
    ph.count = n > c ? (n - c + s - 1) / s : 0;
    ph.dil = d / std::gcd(d, s);
    for (int64_t k = K - 1; k >= 0; --k)
      if ((c + p - k * d) % s == 0) ph.taps.push_back(k);
    if (!ph.taps.empty()) {
      ph.pad = -((c + p - ph.taps[0] * d) / s);  // an exact division
      if (ph.pad < 0 && ph.count > 0) ok = false;
    }
  }
  return phases;
}

// The phase outputs of a run of images, [phase (d, h, w)][image][C][M_d][M_h][M_w], interleaved
// into gx's rows: gx[n, c, first_d + s_d m_d, first_h + s_h m_h, first_w + s_w m_w]. A phase no tap
// reaches (no buffer) gives `value[c]` or 0. One pass writing whole rows of gx.
template <class T>
struct PhaseOutputs {
  const ConvShape* s = nullptr;
  const std::vector<Phase>* axes = nullptr;  // [3]
  std::vector<const T*> buf;                  // per phase (d, h, w) in order, or null
  const T* value = nullptr;
};

template <class T>
void interleave(const PhaseOutputs<T>& po, int64_t n0, int64_t nb, T* gx) {
  const ConvShape& s = *po.s;
  const std::vector<Phase>* ax = po.axes;
  const int64_t sd = s.stride[0], sh = s.stride[1], sw = s.stride[2];
  const int64_t rows = nb * s.C * s.D * s.H;
  parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, s.W)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t ih = r % s.H, id = (r / s.H) % s.D, c = (r / (s.H * s.D)) % s.C, nl = r / (s.H * s.D * s.C);
      const Phase &pd = ax[0][id % sd], &ph = ax[1][ih % sh];
      const int64_t md = id / sd, mh = ih / sh;
      T* dst = gx + (((n0 + nl) * s.C + c) * s.D + id) * s.H * s.W + ih * s.W;
      for (int64_t cw = 0; cw < sw && cw < s.W; ++cw) {
        const Phase& pw = ax[2][cw];
        const T* buf = po.buf[(id % sd * sh + ih % sh) * sw + cw];
        if (!buf) {
          const T v = po.value ? po.value[c] : T(0);
          for (int64_t m = 0; m < pw.count; ++m) dst[cw + sw * m] = v;
          continue;
        }
        const T* src = buf + (((nl * s.C + c) * pd.count + md) * ph.count + mh) * pw.count;
        if (sw == 1) {
          std::copy(src, src + pw.count, dst);
        } else {
          for (int64_t m = 0; m < pw.count; ++m) dst[cw + sw * m] = src[m];
        }
      }
    }
  });
}

// gx = the input gradient of the conv s (+ bias[c]).
template <class T>
void input_gradient(const ConvShape& s, const T* gy, const T* w, const T* bias, T* gx) {
  if (s.N * s.C * s.D * s.H * s.W == 0) return;
  if (s.OC > 0 && s.OD * s.OH * s.OW > 0 && kernels_for<T>().conv_subpixel && conv_subpixel::applicable(s)) {
    kernels_for<T>().conv_subpixel(s, gy, w, bias, gx);
    return;
  }
  const int64_t K[3] = {s.KD, s.KH, s.KW}, n_in[3] = {s.D, s.H, s.W};
  bool ok = true;
  std::vector<Phase> axes[3];
  for (int i = 0; i < 3; ++i) axes[i] = axis_phases(K[i], s.stride[i], s.dilation[i], s.pad[i], n_in[i], ok);
  if (!ok) {
    conv_backward_input_ref<T>(s, gy, w, gx);
    if (bias) {
      const int64_t plane = s.D * s.H * s.W;
      parallel_for(s.N * s.C, std::max<int64_t>(1, 16384 / plane), [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; ++p)
          for (int64_t i = 0; i < plane; ++i) gx[p * plane + i] += bias[p % s.C];
      });
    }
    return;
  }
  // Per phase with taps: its stride-1 conv (N = 1; set per run of images) and flipped weights
  // wf[c, j, a, b, e] = w[g*OCg + j, c % Cg, taps_d[a], taps_h[b], taps_w[e]], weight [C, OCg, KD', KH', KW'].
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups;
  struct PhaseConv {
    ConvShape t{};
    std::vector<T> wf;
    int64_t offset = 0;  // of its outputs within a run's buffer, per image
  };
  std::vector<PhaseConv> convs;
  std::vector<int64_t> conv_of;  // per phase (d, h, w): index into convs, or -1
  int64_t per_image = 0;         // floats of all phase outputs of one image (= gx's image)
  for (const Phase& pd : axes[0])
    for (const Phase& ph : axes[1])
      for (const Phase& pw : axes[2]) {
        const int64_t m = pd.count * ph.count * pw.count;
        if (m == 0 || pd.taps.empty() || ph.taps.empty() || pw.taps.empty()) {
          conv_of.push_back(-1);
          continue;
        }
        conv_of.push_back(static_cast<int64_t>(convs.size()));
        PhaseConv pc;
        ConvShape& t = pc.t;
        t.N = 1; t.C = s.OC; t.D = s.OD; t.H = s.OH; t.W = s.OW;
        t.OC = s.C;
        t.groups = s.groups;
        const Phase* phase[3] = {&pd, &ph, &pw};
        for (int i = 0; i < 3; ++i) {
          t.stride[i] = 1;
          t.pad[i] = phase[i]->pad;
          t.dilation[i] = phase[i]->dil;
        }
        t.KD = static_cast<int64_t>(pd.taps.size());
        t.KH = static_cast<int64_t>(ph.taps.size());
        t.KW = static_cast<int64_t>(pw.taps.size());
        t.OD = pd.count; t.OH = ph.count; t.OW = pw.count;
        const int64_t kvol = t.KD * t.KH * t.KW;
        pc.wf.resize(static_cast<size_t>(s.C * OCg * kvol));
        for (int64_t c = 0; c < s.C; ++c)
          for (int64_t j = 0; j < OCg; ++j) {
            const T* src = w + ((c / Cg * OCg + j) * Cg + c % Cg) * s.KD * s.KH * s.KW;
            T* dst = pc.wf.data() + (c * OCg + j) * kvol;
            for (int64_t kd : pd.taps)
              for (int64_t kh : ph.taps)
                for (int64_t kw : pw.taps) *dst++ = src[(kd * s.KH + kh) * s.KW + kw];
          }
        pc.offset = per_image;
        per_image += s.C * m;
        convs.push_back(std::move(pc));
      }
  const FilterCacheOff no_filter_cache;  // the flipped weights live for this call only
  const bool one_phase = s.stride[0] == 1 && s.stride[1] == 1 && s.stride[2] == 1;
  if (one_phase) {
    ConvShape t = convs[0].t;
    t.N = s.N;
    kernels_for<T>().conv_forward(t, gy, convs[0].wf.data(), bias, gx, Activation::none);
    return;
  }
  // Runs of images whose phase outputs (as large as their gx) stay in the caches until interleaved:
  // up to 1 MB, else one image (a 3x3 stride-2 up-conv of 8 x 64 x 64 x 64: 1.2-1.6x faster than
  // runs of 4 MB).
  const int64_t nb = std::max<int64_t>(
      1, std::min<int64_t>(s.N, (int64_t{1} << 20) / static_cast<int64_t>(sizeof(T)) / std::max<int64_t>(1, per_image)));
  // A call_buffer (memory.h): a fresh mapping would pay a page fault per 4 KiB every call (the 3D
  // volume of U3: 67 MB).
  const auto tmp = call_buffer<T>(nb * per_image);
  PhaseOutputs<T> po;
  po.s = &s;
  po.axes = axes;
  po.value = bias;
  const int64_t gy_image = s.OC * s.OD * s.OH * s.OW;
  for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
    const int64_t n = std::min(nb, s.N - n0);
    po.buf.clear();
    for (int64_t ci : conv_of) {
      if (ci < 0) {
        po.buf.push_back(nullptr);
        continue;
      }
      PhaseConv& pc = convs[ci];
      ConvShape t = pc.t;
      t.N = n;
      T* out = tmp.get() + n * pc.offset;
      kernels_for<T>().conv_forward(t, gy + n0 * gy_image, pc.wf.data(), bias, out, Activation::none);
      po.buf.push_back(out);
    }
    interleave<T>(po, n0, n, gx);
  }
}

}  // namespace

template <class T>
void conv_backward_input(const ConvShape& s, const T* gy, const T* w, T* gx) {
  input_gradient<T>(s, gy, w, nullptr, gx);
}

template <class T>
void conv_transpose_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y) {
  input_gradient<T>(s, x, w, bias, y);
}

template void conv_backward_input<float>(const ConvShape&, const float*, const float*, float*);
template void conv_backward_input<double>(const ConvShape&, const double*, const double*, double*);
template void conv_transpose_forward<float>(const ConvShape&, const float*, const float*, const float*, float*);
template void conv_transpose_forward<double>(const ConvShape&, const double*, const double*, const double*, double*);

}  // namespace medconv
