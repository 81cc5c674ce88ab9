// The portable reference kernels: the last row of every dispatch table.
#pragma once
#include "kernels.h"

namespace medconv {

template <class T> void conv_forward_ref(const ConvShape&, const T* x, const T* w, const T* bias, T* y, Activation act);
template <class T> void max_pool_ref(const PoolShape&, const T* x, T* y, int64_t* indices);
template <class T> void avg_pool_ref(const PoolShape&, const T* x, T* y, bool count_include_pad, int64_t divisor);
template <class T> void adaptive_avg_pool_ref(const PoolShape&, const T* x, T* y);
template <class T> void pad_ref(const PadShape&, const T* x, T* y, PadMode mode, T value);
template <class T> void unary_ref(UnaryOp op, const T* x, T* y, int64_t n, T alpha);
template <class T> void softmax_ref(const T* x, T* y, int64_t outer, int64_t dim, int64_t inner, bool log);
template <class T> void maxout_ref(const T* x, T* y, int64_t outer, int64_t groups, int64_t pieces, int64_t inner);
template <class T> void linear_ref(const T* x, const T* w, const T* bias, T* y, int64_t M, int64_t N, int64_t K);

}  // namespace medconv
