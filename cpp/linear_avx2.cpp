// Dense layer y = x w^T + bias and its gradients on the 6x16 AVX2+FMA SGEMM, float32 (conv_gemm.h's
// linear_gemm and linear_backward_*_gemm); layers with up to 4 outputs, and their gradients,
// in one pass over the long rows. float64 on the 6x8 DGEMM (dgemm_avx2.h).
#include <immintrin.h>

#include <algorithm>

#include "avx2_kernels.h"
#include "conv_gemm.h"
#include "dgemm_avx2.h"
#include "gemm_avx2.h"
#include "parallel.h"
#include "vecmath_avx2.h"

namespace medconv {
namespace {

// y[m, n] = bias[n] + dot(x[m], w[n]) for NN outputs and RB rows at a time: with a few outputs (a
// classifier's head) the layer is a read of x, which a GEMM's 16-column tiles would mostly waste.
// Each dot runs in 8 lanes over k in order, then the lanes are summed; one task per row block.
template <int RB, int NN>
void dot_rows(const float* x, const float* w, const float* bias, float* y, int64_t M, int64_t K) {
  const int64_t full = K / 8 * 8;
  const __m256i tm = avx2::tail_mask(K - full);
  parallel_for((M + RB - 1) / RB, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, K)), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t m0 = b * RB, rows = std::min<int64_t>(RB, M - m0);
      __m256 acc[RB][NN];
      for (int r = 0; r < RB; ++r)
        for (int n = 0; n < NN; ++n) acc[r][n] = _mm256_setzero_ps();
      auto step = [&](int64_t k, auto load) {
        __m256 wv[NN];
        for (int n = 0; n < NN; ++n) wv[n] = load(w + n * K + k);
        for (int r = 0; r < RB; ++r) {
          const __m256 xv = load(x + (m0 + std::min<int64_t>(r, rows - 1)) * K + k);
          for (int n = 0; n < NN; ++n) acc[r][n] = _mm256_fmadd_ps(xv, wv[n], acc[r][n]);
        }
      };
      for (int64_t k = 0; k < full; k += 8) step(k, [](const float* p) { return _mm256_loadu_ps(p); });
      if (full < K) step(full, [&](const float* p) { return _mm256_maskload_ps(p, tm); });
      for (int r = 0; r < rows; ++r)
        for (int n = 0; n < NN; ++n) {
          const float sum = avx2::hsum_ps(acc[r][n]);
          y[(m0 + r) * NN + n] = bias ? bias[n] + sum : sum;  // bias first, as the reference
        }
    }
  });
}

// x: [M, K], w: [N, K], bias: [N] or null, y: [M, N]
void linear_avx2(const float* x, const float* w, const float* bias, float* y, int64_t M, int64_t N, int64_t K) {
  if (K >= 64 && N <= 4) {
    switch (N) {
      case 1: return dot_rows<4, 1>(x, w, bias, y, M, K);
      case 2: return dot_rows<4, 2>(x, w, bias, y, M, K);
      case 3: return dot_rows<2, 3>(x, w, bias, y, M, K);
      case 4: return dot_rows<2, 4>(x, w, bias, y, M, K);
      default: break;
    }
  }
  conv_gemm::linear_gemm<gemm::Gemm>(x, w, bias, y, M, N, K);
}

// The gradients of a layer with up to 4 outputs in one pass over the K-long rows, a chunk of
// kChunk columns per task (the GEMM filled 2-4 of its 6 rows or 16 columns and packed the long
// operand first: the small CNN's 16 x 131072 -> 2 head took 3 ms for its weight gradient, torch 0.5).
constexpr int64_t kChunk = 1024;  // NN x 4 KiB of accumulators in L1

// gx[m, k] = sum_n gy[m, n] w[n, k], n in order. gy: [M, NN], w: [NN, K], gx: [M, K]
template <int NN>
void input_grad_few_outputs(const float* gy, const float* w, float* gx, int64_t M, int64_t K) {
  parallel_for((K + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const int64_t k0 = c * kChunk, k1 = std::min(K, k0 + kChunk), full = k0 + (k1 - k0) / 8 * 8;
      const __m256i tm = avx2::tail_mask(k1 - full);
      for (int64_t m = 0; m < M; ++m) {
        __m256 g[NN];
        for (int n = 0; n < NN; ++n) g[n] = _mm256_broadcast_ss(gy + m * NN + n);
        auto at = [&](int64_t k, auto load) {
          __m256 acc = _mm256_mul_ps(g[0], load(w + k));
          for (int n = 1; n < NN; ++n) acc = _mm256_fmadd_ps(g[n], load(w + n * K + k), acc);
          return acc;
        };
        float* row = gx + m * K;
        for (int64_t k = k0; k < full; k += 8) _mm256_storeu_ps(row + k, at(k, [](const float* p) { return _mm256_loadu_ps(p); }));
        if (full < k1) _mm256_maskstore_ps(row + full, tm, at(full, [&](const float* p) { return _mm256_maskload_ps(p, tm); }));
      }
    }
  });
}

// gw[n, k] = sum_m gy[m, n] x[m, k], m in order. gy: [M, NN], x: [M, K], gw: [NN, K]
template <int NN>
void weight_grad_few_outputs(const float* gy, const float* x, float* gw, int64_t M, int64_t K) {
  parallel_for((K + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    alignas(32) float acc[NN][kChunk];
    for (int64_t c = begin; c < end; ++c) {
      const int64_t k0 = c * kChunk, width = std::min(K, k0 + kChunk) - k0, full = width / 8 * 8;
      const __m256i tm = avx2::tail_mask(width - full);
      for (int n = 0; n < NN; ++n) std::fill(acc[n], acc[n] + kChunk, 0.0f);
      for (int64_t m = 0; m < M; ++m) {
        __m256 g[NN];
        for (int n = 0; n < NN; ++n) g[n] = _mm256_broadcast_ss(gy + m * NN + n);
        const float* xr = x + m * K + k0;
        auto step = [&](int64_t k, __m256 xv) {
          for (int n = 0; n < NN; ++n) _mm256_store_ps(acc[n] + k, _mm256_fmadd_ps(g[n], xv, _mm256_load_ps(acc[n] + k)));
        };
        for (int64_t k = 0; k < full; k += 8) step(k, _mm256_loadu_ps(xr + k));
        if (full < width) step(full, _mm256_maskload_ps(xr + full, tm));
      }
      for (int n = 0; n < NN; ++n) std::copy(acc[n], acc[n] + width, gw + n * K + k0);
    }
  });
}

// gy: [M, N], w: [N, K], gx: [M, K]
void linear_backward_input_avx2(const float* gy, const float* w, float* gx, int64_t M, int64_t N, int64_t K) {
  if (K >= 64 && N <= 4 && M > 0) {
    switch (N) {
      case 1: return input_grad_few_outputs<1>(gy, w, gx, M, K);
      case 2: return input_grad_few_outputs<2>(gy, w, gx, M, K);
      case 3: return input_grad_few_outputs<3>(gy, w, gx, M, K);
      case 4: return input_grad_few_outputs<4>(gy, w, gx, M, K);
      default: break;
    }
  }
  conv_gemm::linear_backward_input_gemm<gemm::Gemm>(gy, w, gx, M, N, K);
}

// gy: [M, N], x: [M, K], gw: [N, K], gb: [N] or null
void linear_backward_weight_avx2(const float* gy, const float* x, float* gw, float* gb, int64_t M, int64_t N,
                                 int64_t K) {
  if (K >= 64 && N <= 4 && M > 0) {
    switch (N) {
      case 1: weight_grad_few_outputs<1>(gy, x, gw, M, K); break;
      case 2: weight_grad_few_outputs<2>(gy, x, gw, M, K); break;
      case 3: weight_grad_few_outputs<3>(gy, x, gw, M, K); break;
      case 4: weight_grad_few_outputs<4>(gy, x, gw, M, K); break;
      default: break;
    }
    conv_gemm::linear_bias_grad(gy, gb, M, N);
    return;
  }
  conv_gemm::linear_backward_weight_gemm<gemm::Gemm>(gy, x, gw, gb, M, N, K);
}

}  // namespace

void add_linear_avx2(KernelTable& t) {
  t.f64.linear = conv_gemm::linear_gemm<dgemm::Gemm>;
  t.f64.linear_backward_input = conv_gemm::linear_backward_input_gemm<dgemm::Gemm>;
  t.f64.linear_backward_weight = conv_gemm::linear_backward_weight_gemm<dgemm::Gemm>;
  t.f32.linear = linear_avx2;
  t.f32.linear_backward_input = linear_backward_input_avx2;
  t.f32.linear_backward_weight = linear_backward_weight_avx2;
}

}  // namespace medconv
