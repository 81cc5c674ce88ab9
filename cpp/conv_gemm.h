// Implicit-GEMM convolution and linear over any ISA's packed GEMM (the SGEMMs, and AVX2's DGEMM for
// float64: T is the GEMM's Scalar): the im2col columns are packed
// straight from the input into the GEMM's B panels, never materialised. ISA-independent plain
// loops (the per-file flags vectorise them); each conv_<isa>.cpp / linear_<isa>.cpp instantiates
// them with its GEMM. Internal linkage throughout (see gemm_common.h).
//
// A GEMM is a struct with Scalar, MR, NR, KC, NC, packed_a_size(M, K), pack_a(a, lda, ska, M, K, Ap)
// and gemm_columns(M, K, Ap, pack_b, j0, j1, C, ldc, epilogue, work): gemm_common.h's GemmApi.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "aligned.h"
#include "gemm_common.h"
#include "kernels.h"
#include "memory.h"
#include "parallel.h"

namespace medconv {
namespace conv_gemm {
namespace {

// How pack_conv_columns fills one NR-wide row of a panel; an ISA may bring vector versions.
// d: [NR] (64-byte aligned), src/row: input row pointers
template <int NR, class T = float>
struct PlainRows {
  static constexpr int64_t kStride2Overread = 0;  // elements copy_stride2 reads past src[2*(NR-1)]
  static void copy(T* d, const T* src) {  // d[t] = src[t]
    for (int t = 0; t < NR; ++t) d[t] = src[t];
  }
  static void copy_stride2(T* d, const T* src) {  // d[t] = src[2t]
    for (int t = 0; t < NR; ++t) d[t] = src[2 * t];
  }
  static void edge(T* d, const T* row, int64_t iw0, int64_t W) {  // d[t] = row[iw0 + t] inside [0, W), else 0
    for (int t = 0; t < NR; ++t) d[t] = iw0 + t >= 0 && iw0 + t < W ? row[iw0 + t] : T(0);
  }
};

// d[t] = x row `row` at iw0 + t*sw for t < NR, zero outside [0, W): one row of a panel whose NR
// columns lie in one output row.
template <int NR, class Rows, class T>
inline void fill_row_panel(T* d, const T* row, int64_t iw0, int64_t sw, int64_t W) {
  const int64_t iw_last = iw0 + (NR - 1) * sw;
  if (sw == 1 && iw0 >= 0 && iw_last < W) {
    Rows::copy(d, row + iw0);
  } else if (sw == 1) {  // a row edge: taps outside [0, W) read as zero
    Rows::edge(d, row, iw0, W);
  } else if (sw == 2 && iw0 >= 0 && iw_last + Rows::kStride2Overread < W) {
    Rows::copy_stride2(d, row + iw0);
  } else {
    for (int t = 0; t < NR; ++t) {
      const int64_t iw = iw0 + t * sw;
      d[t] = iw >= 0 && iw < W ? row[iw] : T(0);
    }
  }
}

// Fills Bp[panel][k][NR] with B[k, j] = x[ic, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw]
// (zero outside x) for k = ((ic*KD + kd)*KH + kh)*KW + kw in [pc, pc + kc) and
// j = (od*OH + oh)*OW + ow in [jc, jc + nc); columns past nc are zero.
// An input larger than L2 is read along its rows: the panels whose NR columns lie in one output
// row are filled kChunk k rows at a time across all of them, instead of jumping between channel
// planes for each panel in turn (S5: 10% faster).
// xg: [Cg, D, H, W] (one image, one group)
template <int NR, class Rows = PlainRows<NR>, class T = float>
void pack_conv_columns(const ConvShape& s, const T* xg, int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
  constexpr int64_t kMaxPanels = 64, kChunk = 16, kRowOrderBytes = int64_t{1} << 20;
  const int64_t plane = s.D * s.H * s.W;
  const int64_t panels = (nc + NR - 1) / NR;
  const bool pointwise = s.KD * s.KH * s.KW == 1 && s.stride[0] == 1 && s.stride[1] == 1 && s.stride[2] == 1 &&
                         s.pad[0] == 0 && s.pad[1] == 0 && s.pad[2] == 0 && s.OD == s.D && s.OH == s.H && s.OW == s.W;
  if (pointwise) {  // B[k, j] = x[pc + k, j]: rows of x copied as they are, along x's rows
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = xg + (pc + k) * plane + jc;
      for (int64_t p = 0; p < panels; ++p) {
        T* d = Bp + (p * kc + k) * NR;
        const int64_t cols = std::min<int64_t>(NR, nc - p * NR);
        if (cols == NR) {
          Rows::copy(d, src + p * NR);
        } else {
          for (int t = 0; t < NR; ++t) d[t] = t < cols ? src[p * NR + t] : T(0);
        }
      }
    }
    return;
  }
  const bool row_order = (s.C / s.groups) * plane * static_cast<int64_t>(sizeof(T)) > kRowOrderBytes;
  int64_t one_row[kMaxPanels], rid[kMaxPanels], rih[kMaxPanels], riw[kMaxPanels];  // deferred one-row panels
  int64_t deferred = 0;
  int64_t cid[NR], cih[NR], ciw[NR];  // the top-left tap of each column of a panel
  for (int64_t p = 0; p < panels; ++p) {
    T* dst = Bp + p * kc * NR;
    const int64_t cols = std::min<int64_t>(NR, nc - p * NR);
    const int64_t j0 = jc + p * NR;
    for (int t = 0; t < NR; ++t) {
      const int64_t j = j0 + std::min<int64_t>(t, cols - 1);
      const int64_t ow = j % s.OW, oh = (j / s.OW) % s.OH, od = j / (s.OW * s.OH);
      cid[t] = od * s.stride[0] - s.pad[0];
      cih[t] = oh * s.stride[1] - s.pad[1];
      ciw[t] = ow * s.stride[2] - s.pad[2];
    }
    // All columns in one output row: they share (id, ih), and iw advances by the stride.
    const bool in_one_row = cols == NR && cid[0] == cid[NR - 1] && cih[0] == cih[NR - 1] && ciw[NR - 1] > ciw[0];
    // Otherwise runs of columns in one output row each (small images: a 4x4 output is 4 runs of 4)
    struct Run {
      int t0, n;
    };
    Run runs[NR];
    int nruns = 0;
    if (!in_one_row)
      for (int t = 0; t < cols; ++t) {
        if (nruns > 0 && cid[t] == cid[t - 1] && cih[t] == cih[t - 1] && ciw[t] > ciw[t - 1]) ++runs[nruns - 1].n;
        else runs[nruns++] = Run{t, 1};
      }
    if (in_one_row && row_order && deferred < kMaxPanels) {
      one_row[deferred] = p, rid[deferred] = cid[0], rih[deferred] = cih[0], riw[deferred] = ciw[0];
      ++deferred;
      continue;
    }
    ConvTap tap(s, pc);
    for (int64_t kk = 0; kk < kc; ++kk, tap.next(s)) {
      T* d = dst + kk * NR;
      const T* xc = xg + tap.ic * plane;
      const int64_t dd = tap.kd * s.dilation[0], dh = tap.kh * s.dilation[1], dw = tap.kw * s.dilation[2];
      if (in_one_row) {
        const int64_t id = cid[0] + dd, ih = cih[0] + dh;
        if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
          for (int t = 0; t < NR; ++t) d[t] = T(0);
        } else {
          fill_row_panel<NR, Rows>(d, xc + (id * s.H + ih) * s.W, ciw[0] + dw, s.stride[2], s.W);
        }
      } else {
        // run by run: a run's columns share (id, ih), so one check covers them, then only iw's
        for (int r = 0; r < nruns; ++r) {
          const Run& run = runs[r];
          const int64_t id = cid[run.t0] + dd, ih = cih[run.t0] + dh;
          T* dr = d + run.t0;
          if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
            for (int t = 0; t < run.n; ++t) dr[t] = T(0);
            continue;
          }
          const T* row = xc + (id * s.H + ih) * s.W;
          const int64_t iw0 = ciw[run.t0] + dw;
          for (int t = 0; t < run.n; ++t) {
            const int64_t iw = iw0 + t * s.stride[2];
            dr[t] = iw >= 0 && iw < s.W ? row[iw] : T(0);
          }
        }
        for (int t = cols; t < NR; ++t) d[t] = T(0);
      }
    }
  }
  for (int64_t k0 = 0; k0 < kc && deferred > 0; k0 += kChunk) {
    const int64_t k1 = std::min(kc, k0 + kChunk);
    const ConvTap first(s, pc + k0);
    for (int64_t r = 0; r < deferred; ++r) {
      ConvTap tap = first;
      for (int64_t kk = k0; kk < k1; ++kk, tap.next(s)) {
        T* d = Bp + (one_row[r] * kc + kk) * NR;
        const int64_t id = rid[r] + tap.kd * s.dilation[0], ih = rih[r] + tap.kh * s.dilation[1];
        if (id < 0 || id >= s.D || ih < 0 || ih >= s.H) {
          for (int t = 0; t < NR; ++t) d[t] = T(0);
        } else {
          fill_row_panel<NR, Rows>(d, xg + ((tap.ic * s.D + id) * s.H + ih) * s.W, riw[r] + tap.kw * s.dilation[2],
                                   s.stride[2], s.W);
        }
      }
    }
  }
}


// y[n, g*OCg + o, j] = act(bias[g*OCg + o] + sum_k w[g*OCg + o, k] * B_{n,g}[k, j])
// with B the im2col matrix of pack_conv_columns. Tasks: (image, group, NC-wide column tile).
// x: [N, C, D, H, W], w: [OC, C/G, KD, KH, KW], bias: [OC] or null, y: [N, OC, OD, OH, OW]
// pack(s, xg, pc, kc, jc, nc, Bp) fills a block of B as pack_conv_columns<Gemm::NR> does (an ISA may
// bring a faster packer).
template <class Gemm, class Pack, class T = typename Gemm::Scalar>
void conv_gemm(const ConvShape& s, const T* x, const T* w, const T* bias, T* y, bool relu, const Pack& pack) {
  const int64_t G = s.groups, Cg = s.C / G, OCg = s.OC / G;
  const int64_t K = Cg * s.KD * s.KH * s.KW;
  const int64_t Nsp = s.OD * s.OH * s.OW;
  const int64_t a_size = Gemm::packed_a_size(OCg, K);
  const auto Ap = call_buffer<T>(a_size * G);
  for (int64_t g = 0; g < G; ++g) Gemm::pack_a(w + g * OCg * K, K, 1, OCg, K, Ap.get() + g * a_size);
  const int64_t tiles = (Nsp + Gemm::NC - 1) / Gemm::NC;
  parallel_for(s.N * G * tiles, 1, [&](int64_t begin, int64_t end) {
    T* work = thread_scratch<T>(Gemm::KC * Gemm::NC);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tile = t % tiles, g = (t / tiles) % G, n = t / (tiles * G);
      const T* xg = x + (n * s.C + g * Cg) * s.D * s.H * s.W;
      T* yg = y + (n * s.OC + g * OCg) * Nsp;
      gemm_common::EpilogueOf<T> ep;
      ep.row_bias = bias ? bias + g * OCg : nullptr;
      ep.relu = relu;
      const int64_t j0 = tile * Gemm::NC, j1 = std::min(Nsp, j0 + Gemm::NC);
      Gemm::gemm_columns(OCg, K, Ap.get() + g * a_size,
                         [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
                           pack(s, xg, pc, kc, jc, nc, Bp);
                         },
                         j0, j1, yg, Nsp, ep, work);
    }
  });
}

template <class Gemm, class T = typename Gemm::Scalar>
void conv_gemm(const ConvShape& s, const T* x, const T* w, const T* bias, T* y, bool relu) {
  conv_gemm<Gemm>(s, x, w, bias, y, relu, pack_conv_columns<Gemm::NR, PlainRows<Gemm::NR, T>, T>);
}

// C[M, N] = A[M, K] B[K, N] (+ col_bias[n]), A(i, k) = a[i * lda + k * ska] packed once; B's blocks
// (NC columns by one of the GEMM's K passes) packed by pack_b(pc, kc, jc, nc, Bp) (gemm_common.h's
// PackB). Tasks: (MB-row block, NC-wide column tile). With several row blocks, B is packed once per
// call into a call_buffer (memory.h) and the tasks copy their blocks from there: a packer that
// gathers B's columns, as linear's, costs about a nanosecond an element, 20-30% of a
// 256 x 4096 x 1000 layer when each of its 96-row blocks repeated it. K = 0 gives the bias (or zeros).
template <class Gemm, class PackB, class T = typename Gemm::Scalar>
void matmul(const T* a, int64_t lda, int64_t ska, const PackB& pack_b, const typename Gemm::Scalar* col_bias, T* c,
            int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) c[i * N + j] = col_bias ? col_bias[j] : T(0);
    return;
  }
  // Rows per task: all of them where their A block (M x KC) stays in L2 and the column tiles alone
  // keep the threads busy; else 96.
  const int64_t col_tiles = (N + Gemm::NC - 1) / Gemm::NC;
  const int64_t MB = M <= 384 && col_tiles >= 2 * get_num_threads() ? (M + Gemm::MR - 1) / Gemm::MR * Gemm::MR
                                                                     : 96 / Gemm::MR * Gemm::MR;
  const int64_t row_blocks = (M + MB - 1) / MB;
  const auto Ap = call_buffer<T>(Gemm::packed_a_size(M, K));
  Gemm::pack_a(a, lda, ska, M, K, Ap.get());
  const int64_t kstep = gemm_common::k_step<Gemm::KC>(K), passes = (K + kstep - 1) / kstep;
  const int64_t block = (std::min(N, Gemm::NC) + Gemm::NR - 1) / Gemm::NR * Gemm::NR * kstep;  // elements
  const bool prepack = row_blocks > 1;
  const auto Bp = call_buffer<T>(prepack ? col_tiles * passes * block : 1);
  if (prepack)
    parallel_for(col_tiles * passes, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t jc = t / passes * Gemm::NC, pc = t % passes * kstep;
        pack_b(pc, std::min(kstep, K - pc), jc, std::min(Gemm::NC, N - jc), Bp.get() + t * block);
      }
    });
  parallel_for(row_blocks * col_tiles, 1, [&](int64_t begin, int64_t end) {
    T* work = thread_scratch<T>(Gemm::KC * Gemm::NC);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t rb = t / col_tiles, ct = t % col_tiles;
      const int64_t i0 = rb * MB, rows = std::min(MB, M - i0);
      const int64_t j0 = ct * Gemm::NC, j1 = std::min(N, j0 + Gemm::NC);
      const int64_t panel_elements = (j1 - j0 + Gemm::NR - 1) / Gemm::NR * Gemm::NR;
      gemm_common::EpilogueOf<T> ep;
      ep.col_bias = col_bias;
      auto copy_block = [&](int64_t pc, int64_t kc, int64_t, int64_t, T* dst) {
        std::memcpy(dst, Bp.get() + (ct * passes + pc / kstep) * block, sizeof(T) * kc * panel_elements);
      };
      if (prepack) Gemm::gemm_columns(rows, K, Ap.get() + i0 * K, copy_block, j0, j1, c + i0 * N, N, ep, work);
      else Gemm::gemm_columns(rows, K, Ap.get() + i0 * K, pack_b, j0, j1, c + i0 * N, N, ep, work);
    }
  });
}

// With fewer outputs than a B panel's NR columns and more rows, y^T = w x^T instead (x's rows the
// B panels, w's the A rows): the small CNN's 16 x 131072 -> 2 head wasted 14 of 16 columns.
template <class Gemm, class T = typename Gemm::Scalar>
void linear_gemm(const T* x, const T* w, const T* bias, T* y, int64_t M, int64_t N, int64_t K) {
  if (N < Gemm::NR && M > N) {
    const auto yt = call_buffer<T>(N * M);
    matmul<Gemm>(w, K, 1,
                     [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
                       gemm_common::pack_transposed_columns<Gemm::NR>(x, K, pc, kc, jc, nc, Bp);
                     },
                     nullptr, yt.get(), N, M, K);
    for (int64_t m = 0; m < M; ++m)  // bias first, as the reference: bias + sum
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] + yt.get()[n * M + m] : yt.get()[n * M + m];
    return;
  }
  matmul<Gemm>(x, K, 1,
                   [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
                     gemm_common::pack_transposed_columns<Gemm::NR>(w, K, pc, kc, jc, nc, Bp);
                   },
                   bias, y, M, N, K);
}

// The dense layer's gradients (gy: [M, N], w: [N, K], x: [M, K]):
//   gx[m, k] = sum_n gy[m, n] w[n, k]        (A = gy, B = w's rows)
//   gw[n, k] = sum_m gy[m, n] x[m, k]        (A = gy^T, packed from gy's columns; B = x's rows)
//   gb[n] = sum_m gy[m, n], m in order
template <class Gemm, class T = typename Gemm::Scalar>
void linear_backward_input_gemm(const T* gy, const T* w, T* gx, int64_t M, int64_t N, int64_t K) {
  matmul<Gemm>(gy, N, 1,
                   [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
                     gemm_common::pack_rows<Gemm::NR>(w, K, pc, kc, jc, nc, Bp);
                   },
                   nullptr, gx, M, K, N);
}

// gb[n] = sum_m gy[m, n] in order (gb may be null). gy: [M, N]
template <class T>
inline void linear_bias_grad(const T* gy, T* gb, int64_t M, int64_t N) {
  if (!gb) return;
  for (int64_t n = 0; n < N; ++n) gb[n] = T(0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) gb[n] += gy[m * N + n];
}

template <class Gemm, class T = typename Gemm::Scalar>
void linear_backward_weight_gemm(const T* gy, const T* x, T* gw, T* gb, int64_t M, int64_t N, int64_t K) {
  matmul<Gemm>(gy, 1, N,
                   [&](int64_t pc, int64_t kc, int64_t jc, int64_t nc, T* Bp) {
                     gemm_common::pack_rows<Gemm::NR>(x, K, pc, kc, jc, nc, Bp);
                   },
                   nullptr, gw, N, K, M);
  linear_bias_grad(gy, gb, M, N);
}

}  // namespace
}  // namespace conv_gemm
}  // namespace medconv
