// Backward and training kernels of the CNN API (portable reference; plain loops, no intrinsics).
// Layouts are C-contiguous; 1d and 2d ops run as 3d with size-1 leading spatial dims, as in
// kernels.h. Python validates; bind_nn.cpp checks what keeps memory safe; kernels only assert.
// Every kernel parallelises over outputs it owns alone (a gradient row, a weight, a plane), so
// no two threads ever add into the same element and results are bitwise the same for any
// thread count.
#pragma once
#include <cstdint>

#include "kernels.h"

namespace medconv {

struct PackedGemm;  // packed_gemm.h

// ---------------------------------------------------------------- convolution (conv_backward_ref.cpp)
// s describes the forward conv x [N, C, D, H, W] * w [OC, C/groups, KD, KH, KW] -> y [N, OC, OD, OH, OW].
// gx[n, c, i] = sum_{oc in c's group, k, o: o*stride - pad + k*dilation = i} gy[n, oc, o] * w[oc, c % Cg, k]
template <class T> void conv_backward_input_ref(const ConvShape& s, const T* gy, const T* w, T* gx);
// The same gradient, the fastest way available (conv_phases.cpp): stride-1 forward convs of gy with
// the flipped, transposed weights, one per stride phase, run by the active ISA's conv_forward kernel
// (dispatch.h); conv_backward_input_ref where the padding exceeds the dilated kernel.
template <class T> void conv_backward_input(const ConvShape& s, const T* gy, const T* w, T* gx);
// gw[oc, ic, k] = sum_{n, o} gy[n, oc, o] * x[n, g*Cg + ic, o*stride - pad + k*dilation]
template <class T> void conv_backward_weight_ref(const ConvShape& s, const T* x, const T* gy, T* gw);
// The same, im2col + register-tiled dot products (conv_backward_avx2.cpp; x86 builds only).
template <class T>
void conv_backward_weight_avx2(const ConvShape& s, const T* x, const T* gy, T* gw, const PackedGemm& gemm);
// The same in float32 as a packed SGEMM over im2col columns packed from x (conv_weight_grad_gemm_avx2.cpp).
void conv_backward_weight_gemm_f32(const ConvShape& s, const float* x, const float* gy, float* gw, const PackedGemm& gemm);
// The same for 3x3 stride-1 2D convs through Winograd F(3x3, 4x4) (conv_weight_grad_winograd_avx2.cpp),
// where conv_weight_grad_winograd_applies(s); false when some result came out non-finite (then the
// caller recomputes gw exactly).
bool conv_weight_grad_winograd_applies(const ConvShape& s);
bool conv_backward_weight_winograd_f32(const ConvShape& s, const float* x, const float* gy, float* gw,
                                       const PackedGemm& gemm);
// The fastest of the two that the active ISA (dispatch.h; MEDCONV_ISA) allows.
template <class T> void conv_backward_weight(const ConvShape& s, const T* x, const T* gy, T* gw);
// gb[c] = sum_{n, i} gy[n, c, i]     gy: [N, C, S]
template <class T> void channel_sum_ref(const T* gy, T* gb, int64_t N, int64_t C, int64_t S);

// ---------------------------------------------------------------- transposed conv (conv_phases.cpp)
// The transposed conv of x [N, OC, OD, OH, OW] with w [OC, C/groups, K...] is the input gradient of
// the conv that s describes, plus bias [C]: y [N, C, D, H, W]; computed as conv_backward_input.
template <class T> void conv_transpose_forward(const ConvShape& s, const T* x, const T* w, const T* bias, T* y);

// ---------------------------------------------------------------- pad (pad_backward_ref.cpp)
// gx[p, i] = sum of gy[p, j] over the output positions j that read input position i.
template <class T> void pad_backward_ref(const PadShape& s, const T* gy, T* gx, PadMode mode);

// ---------------------------------------------------------------- pooling (pool_backward_ref.cpp)
// gx: [planes, in_plane], zeroed, then gx[p, indices[p, o]] += gy[p, o] (one thread per plane).
template <class T>
void max_pool_backward_ref(int64_t planes, int64_t in_plane, int64_t out_plane, const T* gy, const int64_t* indices,
                           T* gx);
template <class T> void avg_pool_backward_ref(const PoolShape& s, const T* gy, T* gx, bool count_include_pad, int64_t divisor);
template <class T> void adaptive_avg_pool_backward_ref(const PoolShape& s, const T* gy, T* gx);

// ---------------------------------------------------------------- activations (act_backward_ref.cpp)
// gx[i] = gy[i] * op'(x[i]); y = op(x) is read by sigmoid and tanh (null: recomputed from x).
template <class T> void unary_backward_ref(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha);
// The same through the active ISA's forward kernel where the gradient is a formula of the output.
template <class T> void unary_backward(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T alpha);
// y = softmax (or log_softmax) output, all [outer, dim, inner]:
// softmax: gx = y * (gy - sum_d gy*y); log_softmax: gx = gy - exp(y) * sum_d gy
template <class T>
void softmax_backward_ref(const T* y, const T* gy, T* gx, int64_t outer, int64_t dim, int64_t inner, bool log);
// x: [outer, groups, pieces, inner], gy: [outer, groups, inner]; gy goes to the piece that won.
template <class T>
void maxout_backward_ref(const T* x, const T* gy, T* gx, int64_t outer, int64_t groups, int64_t pieces, int64_t inner);

// ---------------------------------------------------------------- linear (linear_backward_ref.cpp)
// gx[m, k] = sum_n gy[m, n] * w[n, k]      gy: [M, N], w: [N, K], gx: [M, K]
template <class T> void linear_backward_input_ref(const T* gy, const T* w, T* gx, int64_t M, int64_t N, int64_t K);
// gw[n, k] = sum_m gy[m, n] * x[m, k]; gb[n] = sum_m gy[m, n] (gb may be null)
template <class T>
void linear_backward_weight_ref(const T* gy, const T* x, T* gw, T* gb, int64_t M, int64_t N, int64_t K);

// ---------------------------------------------------------------- interpolate (interpolate_ref.cpp)
// torch's upsample_{nearest,nearest_exact,linear,bilinear,trilinear}: index and weight rules as in
// ATen's UpSample.h, in T's precision (float32 for float32).
template <class T> void interpolate_ref(const InterpShape& s, const T* x, T* y);
template <class T> void interpolate_backward_ref(const InterpShape& s, const T* gy, T* gx);

// ---------------------------------------------------------------- batch norm (batchnorm_ref.cpp)
// x: [N, C, S]. Per channel c: mean, biased var, invstd = 1 / sqrt(var + eps) (sums in double).
template <class T>
void batch_norm_stats_ref(const T* x, int64_t N, int64_t C, int64_t S, double eps, T* mean, T* var, T* invstd);
// y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]; gamma/beta may be null (1 / 0).
template <class T>
void batch_norm_apply_ref(const T* x, int64_t N, int64_t C, int64_t S, const T* mean, const T* invstd, const T* gamma,
                          const T* beta, T* y);
// xhat = (x - mean) * invstd; gbeta = sum gy; ggamma = sum gy * xhat;
// training (batch stats): gx = gamma * invstd * (gy - gbeta / M - xhat * ggamma / M), M = N * S
// inference (fixed stats): gx = gamma * invstd * gy.   gx, ggamma, gbeta may each be null.
template <class T>
void batch_norm_backward_ref(const T* x, const T* gy, int64_t N, int64_t C, int64_t S, const T* mean, const T* invstd,
                             const T* gamma, bool training, T* gx, T* ggamma, T* gbeta);
// One channel's gx = k * (gy - mean_g - (x - mean) * proj) from its sums (batchnorm_ref.cpp, used by
// every ISA's kernel): sum_g = sum gy, sum_gx = sum gy (x - mean), over M = N * S values.
struct BatchNormGrad {
  double k, mean_g, proj;
};
BatchNormGrad batch_norm_grad(double sum_g, double sum_gx, double gamma, double invstd, double M, bool training);

}  // namespace medconv
