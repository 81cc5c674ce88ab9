// Signatures shared by every ISA variant of each kernel family. Layouts are C-contiguous;
// 1d and 2d ops run as 3d with size-1 leading spatial dims. Python validates all arguments;
// kernels only assert. A null pointer for an optional argument means "absent".
#pragma once
#include <cstdint>

namespace medconv {

struct ConvShape {
  int64_t N, C, D, H, W;        // x: [N, C, D, H, W]
  int64_t OC, KD, KH, KW;       // w: [OC, C / groups, KD, KH, KW]
  int64_t OD, OH, OW;           // y: [N, OC, OD, OH, OW]
  int64_t stride[3], pad[3], dilation[3];  // (d, h, w); pad is the leading (before) zero padding
  int64_t groups;
};

namespace {  // internal linkage: each ISA's file keeps the copy compiled with its flags

// The tap (ic, kd, kh, kw) of im2col row k = ((ic*KD + kd)*KH + kh)*KW + kw, stepped row by row.
struct ConvTap {
  int64_t ic, kd, kh, kw;
  ConvTap(const ConvShape& s, int64_t k)
      : ic(k / (s.KW * s.KH * s.KD)), kd((k / (s.KW * s.KH)) % s.KD), kh((k / s.KW) % s.KH), kw(k % s.KW) {}
  void next(const ConvShape& s) {
    if (++kw < s.KW) return;
    kw = 0;
    if (++kh < s.KH) return;
    kh = 0;
    if (++kd < s.KD) return;
    kd = 0;
    ++ic;
  }
};

}  // namespace

enum class Activation : int { none = 0, relu = 1 };

struct PoolShape {
  int64_t NC, D, H, W;          // x: [N * C, D, H, W]
  int64_t OD, OH, OW;           // y: [N * C, OD, OH, OW]
  int64_t kernel[3], stride[3], pad[3], dilation[3];
};

struct PadShape {
  int64_t outer, D, H, W;       // x: [outer, D, H, W]
  int64_t before[3], after[3];  // (d, h, w); y: [outer, D + before + after, ...]
};

enum class PadMode : int { constant = 0, reflect = 1, replicate = 2, circular = 3 };

enum class InterpMode : int { nearest = 0, nearest_exact = 1, linear = 2 };

struct InterpShape {
  int64_t planes, D, H, W;   // x: [planes, D, H, W]
  int64_t OD, OH, OW;        // y: [planes, OD, OH, OW]
  double scale[3];           // the caller's scale_factor per dim (d, h, w); <= 0 when not given
  bool align_corners;        // linear modes only
  InterpMode mode;
};

enum class UnaryOp : int { relu = 0, leaky_relu, elu, sigmoid, tanh, gelu, gelu_tanh };

template <class T>
struct Kernels {
  void (*conv_forward)(const ConvShape&, const T* x, const T* w, const T* bias, T* y, Activation act);
  void (*max_pool)(const PoolShape&, const T* x, T* y, int64_t* indices);
  void (*avg_pool)(const PoolShape&, const T* x, T* y, bool count_include_pad, int64_t divisor);
  void (*adaptive_avg_pool)(const PoolShape&, const T* x, T* y);
  void (*pad)(const PadShape&, const T* x, T* y, PadMode mode, T value);
  void (*unary)(UnaryOp op, const T* x, T* y, int64_t n, T alpha);
  void (*softmax)(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log);
  void (*maxout)(const T* x, T* y, int64_t outer, int64_t groups, int64_t pieces, int64_t inner);
  // y[m, n] = sum_k x[m, k] * w[n, k] + bias[n]     x: [M, K], w: [N, K], y: [M, N]
  void (*linear)(const T* x, const T* w, const T* bias, T* y, int64_t M, int64_t N, int64_t K);
  // gx[m, k] = sum_n gy[m, n] * w[n, k]     gy: [M, N], w: [N, K], gx: [M, K]
  void (*linear_backward_input)(const T* gy, const T* w, T* gx, int64_t M, int64_t N, int64_t K);
  // gw[n, k] = sum_m gy[m, n] * x[m, k], gb[n] = sum_m gy[m, n] (gb may be null)     x: [M, K], gw: [N, K]
  void (*linear_backward_weight)(const T* gy, const T* x, T* gw, T* gb, int64_t M, int64_t N, int64_t K);
  // batch norm over x: [N, C, S] (nn_kernels.h's batch_norm_*_ref say what each computes)
  void (*batch_norm_stats)(const T* x, int64_t N, int64_t C, int64_t S, double eps, T* mean, T* var, T* invstd);
  void (*batch_norm_apply)(const T* x, int64_t N, int64_t C, int64_t S, const T* mean, const T* invstd,
                           const T* gamma, const T* beta, T* y);
  void (*batch_norm_backward)(const T* x, const T* gy, int64_t N, int64_t C, int64_t S, const T* mean,
                              const T* invstd, const T* gamma, bool training, T* gx, T* ggamma, T* gbeta);
  void (*interpolate)(const InterpShape& s, const T* x, T* y);  // nn_kernels.h's interpolate_ref
  void (*interpolate_backward)(const InterpShape& s, const T* gy, T* gx);
  // gx = the input gradient of conv s (+ bias[c]) as one sub-pixel conv, where conv_subpixel.h's
  // applicable(s); null where an ISA has none (conv_phases.cpp's phase convs then)
  void (*conv_subpixel)(const ConvShape& s, const T* gy, const T* w, const T* bias, T* gx);
};

// Each ISA's file defines its table; entries it does not specialise come from the reference.
template <class T> Kernels<T> reference_kernels();

}  // namespace medconv
