// Softmax / log-softmax down the columns of [outer, dim, inner] (inner > 1: a channel softmax of
// NCHW), and of short rows transposed into columns, over one ISA's lanes: the kernel behind
// softmax_avx2.cpp's and softmax_avx512.cpp's columns. Include only from those files (internal
// linkage: each keeps the copy compiled with its own flags).
//
// Each lane is one column, and gets the rows' recipe: the max (0 for an all -inf column);
// exp(x) 2^-k where every |max| of its 16 columns is <= kScaledMaxAbs, else exp(x - max);
// float64 sums of float32 groups (e0 + e1) + (e2 + e3); y = e * (1 / s), or log-softmax's
// ((x - a) - b) - c of log_subtrahends. A NaN reaches the sum, and so the whole column.
// A task of columns runs in three stages: the sums of each group of vectors (rows in lockstep), then
// the per-column 1 / s or log(s) of every vector (8 vectors in lockstep), then the outputs row by
// row. Per-column work is a long chain of dependent operations (division, float64 log): in a stage
// of its own, the chains of several vectors overlap (log_softmax over 4 channels took 2.2x torch's
// time on AVX2, one group's chain after another). The ISAs compute the same bits.
//
// L, the lanes: V (vecmath.h's float lane type), D (float64 vector of half V's lanes), kLanes, Tail
// (the lanes of a vector in use), kLockstepMany / kLockstepFew (stage 1's vectors at a time at 8 or
// more rows / fewer), and load / store / floor / all / low / high / narrow, the float64 add, sub,
// mul, div, fmadd and set1, and log_wide()'s split_exponent and log_specials.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "aligned.h"
#include "parallel.h"
#include "softmax_common.h"
#include "vecmath.h"

namespace medconv {
namespace {

template <class L>
struct SoftmaxColumns {
  using V = typename L::V;
  using T = typename V::T;
  using D = typename L::D;
  using Tail = typename L::Tail;
  static constexpr int kN = L::kLanes;
  static constexpr int64_t kMaxColumns = 256;   // a task's columns at most
  static constexpr int kMaxVectors = kMaxColumns / kN;
  static constexpr int kFinish = 8;  // vectors whose stage-2 chains run in lockstep (4: 1.1-1.2x slower, 16: 1.1x)
  static constexpr int kUnit = 16 / kN;  // vectors whose maxima pick the exp together

  // The per-vector state between the stages. After finish(): a = 1 / s (softmax), or a, b, c.
  struct Columns {
    T m[kMaxVectors], lowest[kMaxVectors], kb[kMaxVectors];
    D s0[kMaxVectors], s1[kMaxVectors];
    bool scaled[kMaxVectors];
  };

  // e[r K + k] = the exp of row r of vector k (of R rows), in lockstep: exp(x) 2^-k where the
  // vector's 16 columns are scaled, else exp(x - max).
  template <int R, int K>
  static void exp_rows(T (&e)[R * K], const T (&m)[K], const T (&lowest)[K], const T (&kb)[K], const bool (&scaled)[K],
                       bool all_scaled) {
    if (all_scaled) {
      T low[R * K], kbs[R * K];
      for (int i = 0; i < R * K; ++i) low[i] = lowest[i % K], kbs[i] = kb[i % K];
      vecmath::exp_scaled<V>(e, low, kbs);
      return;
    }
    for (int i = 0; i < R * K; ++i) {
      const int k = i % K;
      T one[1] = {e[i]};
      const T low1[1] = {lowest[k]}, kb1[1] = {kb[k]};
      if (scaled[k]) vecmath::exp_scaled<V>(one, low1, kb1), e[i] = one[0];
      else e[i] = vecmath::exp_diff<V>(e[i], m[k]);
    }
  }

  // log(s) for s >= 0 in float64 (s normal or 0, +inf, NaN: -inf, +inf, NaN), absolute error under
  // 1e-10: s = 2^e f with f in [sqrt(1/2), sqrt(2)), log f = 2 atanh(u), u = (f - 1) / (f + 1),
  // |u| < 0.172, by its series to u^11. log(1) is exactly 0. N vectors in place, each step over all N.
  template <int N>
  static void log_wide(D (&s)[N]) {
    D u[N], e[N], p[N];
    for (int n = 0; n < N; ++n) {
      D f;
      L::split_exponent(s[n], f, e[n]);
      u[n] = L::div(L::sub(f, L::set1(1.0)), L::add(f, L::set1(1.0)));
      p[n] = L::set1(1.0 / 11);
    }
    for (const double c : {1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0})
      for (int n = 0; n < N; ++n) p[n] = L::fmadd(p[n], L::mul(u[n], u[n]), L::set1(c));
    for (int n = 0; n < N; ++n) {
      const D r = L::fmadd(e[n], L::set1(0.6931471805599453), L::mul(L::add(u[n], u[n]), p[n]));
      s[n] = L::log_specials(s[n], r);
    }
  }

  // Stage 1 for the K vectors at x (columns kN v0 ...; the last with `tail`, the others whole): max,
  // exp and sums; the exps go to y for the softmax. The rows run in lockstep over the K vectors.
  // Each 16 columns pick the exp by their own maxima, so that both ISAs compute the same bits.
  template <int K>
  static void sums(const float* x, float* y, int64_t dim, int64_t inner, Tail tail, bool log, Columns& c, int v0) {
    const Tail full = L::all_lanes();
    auto tail_of = [&](int k) { return k == K - 1 ? tail : full; };
    const T ninf = V::set1(-std::numeric_limits<float>::infinity());
    T m[K], lowest[K], kb[K];
    for (int k = 0; k < K; ++k) m[k] = ninf;
    for (int64_t d = 0; d < dim; ++d)
      for (int k = 0; k < K; ++k) m[k] = V::max(m[k], L::load(x + d * inner + kN * k, tail_of(k)));
    bool scaled[K];
    for (int k = 0; k < K; ++k) {
      m[k] = V::zero_where(V::eq(m[k], ninf), m[k]);
      scaled[k] = dim > 1 && L::all(V::ge(V::set1(kScaledMaxAbs), V::abs(m[k])));  // false for a NaN max
      lowest[k] = V::sub(m[k], V::set1(89.0f));
      kb[k] = V::sub(L::floor(V::mul(m[k], V::set1(vecmath::kLog2e))), V::set1(127.0f));
    }
    bool all_scaled = true;
    for (int k = 0; k < K; k += kUnit) {
      bool unit = true;
      for (int j = k; j < std::min(K, k + kUnit); ++j) unit &= scaled[j];
      for (int j = k; j < std::min(K, k + kUnit); ++j) scaled[j] = unit;
      all_scaled &= unit;
    }
    D s0[K], s1[K];
    T pair[K], group[K];
    for (int k = 0; k < K; ++k) s0[k] = s1[k] = L::set1(0.0), pair[k] = group[k] = V::zero();
    auto add_group = [&](int k, T g) {
      s0[k] = L::add(s0[k], L::low(g));
      s1[k] = L::add(s1[k], L::high(g));
    };
    int64_t d = 0;
    // Few vectors: whole groups of 4 rows in lockstep as well (4 x K vectors), each summed as
    // (e0 + e1) + (e2 + e3)
    if constexpr (K <= 2) {
      for (; d + 4 <= dim; d += 4) {
        T e[4 * K];
        for (int r = 0; r < 4; ++r)
          for (int k = 0; k < K; ++k) e[r * K + k] = L::load(x + (d + r) * inner + kN * k, tail_of(k));
        exp_rows<4>(e, m, lowest, kb, scaled, all_scaled);
        for (int k = 0; k < K; ++k) {
          if (!log)
            for (int r = 0; r < 4; ++r) L::store(y + (d + r) * inner + kN * k, e[r * K + k], tail_of(k));
          add_group(k, V::add(V::add(e[k], e[K + k]), V::add(e[2 * K + k], e[3 * K + k])));
        }
      }
    }
    // The other rows one at a time: groups of 4 summed as above, a last group of 1 to 3 as e0,
    // e0 + e1, (e0 + e1) + e2
    for (; d < dim; ++d) {
      T e[K];
      for (int k = 0; k < K; ++k) e[k] = L::load(x + d * inner + kN * k, tail_of(k));
      exp_rows<1>(e, m, lowest, kb, scaled, all_scaled);
      const int64_t r = d % 4;
      for (int k = 0; k < K; ++k) {
        if (!log) L::store(y + d * inner + kN * k, e[k], tail_of(k));
        pair[k] = r % 2 == 0 ? e[k] : V::add(pair[k], e[k]);
        if (r == 1) group[k] = pair[k];
      }
      if (r == 3 || d == dim - 1)
        for (int k = 0; k < K; ++k) add_group(k, r <= 1 ? pair[k] : V::add(group[k], pair[k]));
    }
    for (int k = 0; k < K; ++k) {
      c.s0[v0 + k] = s0[k], c.s1[v0 + k] = s1[k];
      if (log) c.m[v0 + k] = m[k], c.lowest[v0 + k] = lowest[k], c.kb[v0 + k] = kb[k], c.scaled[v0 + k] = scaled[k];
    }
  }

  // Stage 2 for vectors v0 .. v0 + K - 1, in lockstep: the softmax's 1 / s into m, or log-softmax's
  // a, b, c into m, lowest, kb.
  template <int K>
  static void finish(Columns& c, int v0, bool log) {
    D s[2 * K];
    for (int k = 0; k < K; ++k) s[2 * k] = c.s0[v0 + k], s[2 * k + 1] = c.s1[v0 + k];
    if (!log) {
      const D one = L::set1(1.0);
      for (int k = 0; k < K; ++k) c.m[v0 + k] = L::narrow(L::div(one, s[2 * k]), L::div(one, s[2 * k + 1]));
      return;
    }
    // sum_d exp(x[d] - m) where scaled: the sum divided by e(m) as computed, so a lone or dominant
    // logit gives 0
    T em[K], lowest[K], kb[K];
    for (int k = 0; k < K; ++k) em[k] = c.m[v0 + k], lowest[k] = c.lowest[v0 + k], kb[k] = c.kb[v0 + k];
    vecmath::exp_scaled<V>(em, lowest, kb);
    for (int k = 0; k < K; ++k)
      if (c.scaled[v0 + k]) s[2 * k] = L::div(s[2 * k], L::low(em[k])), s[2 * k + 1] = L::div(s[2 * k + 1], L::high(em[k]));
    log_wide(s);
    // a float64 pair v0, v1 as float hi + lo; a non-finite one leaves no low part
    auto split = [](D v0, D v1, T& hi, T& lo) {
      hi = L::narrow(v0, v1);
      const T rest = L::narrow(L::sub(v0, L::low(hi)), L::sub(v1, L::high(hi)));
      lo = V::select(V::eq(rest, rest), rest, V::zero());
    };
    for (int k = 0; k < K; ++k) {
      const int v = v0 + k;
      const T m = c.m[v];
      if (c.scaled[v]) {
        split(L::add(L::low(m), s[2 * k]), L::add(L::high(m), s[2 * k + 1]), c.m[v], c.lowest[v]);
        c.kb[v] = V::zero();
      } else {
        split(s[2 * k], s[2 * k + 1], c.lowest[v], c.kb[v]);
      }
    }
  }

  // Stage 3: the outputs of n vectors at x, y (the last with `tail`), row by row.
  static void write(const float* x, float* y, int64_t dim, int64_t inner, int n, Tail tail, bool log, const Columns& c) {
    const Tail full = L::all_lanes();
    auto rows = [&](auto out) {
      for (int64_t d = 0; d < dim; ++d) {
        for (int v = 0; v < n - 1; ++v) out(d, v, full);
        out(d, n - 1, tail);
      }
    };
    if (!log) {
      rows([&](int64_t d, int v, Tail t) {
        float* p = y + d * inner + kN * v;
        L::store(p, V::mul(L::load(p, t), c.m[v]), t);
      });
      return;
    }
    bool all_scaled = true;  // c = 0 everywhere: x - c is x (-0 and NaN included)
    for (int v = 0; v < n; ++v) all_scaled &= c.scaled[v];
    auto minus_ab = [&](int64_t d, int v, Tail t) {
      return V::sub(V::sub(L::load(x + d * inner + kN * v, t), c.m[v]), c.lowest[v]);
    };
    if (all_scaled)
      rows([&](int64_t d, int v, Tail t) { L::store(y + d * inner + kN * v, minus_ab(d, v, t), t); });
    else
      rows([&](int64_t d, int v, Tail t) { L::store(y + d * inner + kN * v, V::sub(minus_ab(d, v, t), c.kb[v]), t); });
  }

  // The softmax of nb <= kMaxColumns columns at x, y of [dim, inner]: stage 1 over K vectors at a
  // time, stage 2 over kFinish, stage 3 over all.
  template <int K>
  static void block(const float* x, float* y, int64_t dim, int64_t inner, int64_t nb, bool log) {
    Columns c;
    int v = 0;
    int64_t col = 0;
    for (; col + K * kN <= nb; col += K * kN, v += K) sums<K>(x + col, y + col, dim, inner, L::all_lanes(), log, c, v);
    Tail tail = L::all_lanes();
    if (col < nb) {  // at most K vectors left, the last with `tail`
      const int n = static_cast<int>((nb - col + kN - 1) / kN);
      tail = L::first(nb - col - (n - 1) * kN);
      leftover<K>(n, x + col, y + col, dim, inner, tail, log, c, v);
      v += n;
    }
    int i = 0;
    for (; i + kFinish <= v; i += kFinish) finish<kFinish>(c, i, log);
    for (; i < v; ++i) finish<1>(c, i, log);
    write(x, y, dim, inner, v, tail, log, c);
  }

  // sums<n> for n in [1, N]
  template <int N>
  static void leftover(int n, const float* x, float* y, int64_t dim, int64_t inner, Tail tail, bool log, Columns& c, int v0) {
    if constexpr (N > 1)
      if (n < N) return leftover<N - 1>(n, x, y, dim, inner, tail, log, c, v0);
    sums<N>(x, y, dim, inner, tail, log, c, v0);
  }

  // Stage 1's lockstep: kLockstepMany vectors (64 columns) at 8 or more rows, else kLockstepFew.
  static void any_block(const float* x, float* y, int64_t dim, int64_t inner, int64_t nb, bool log) {
    if (dim >= 8) block<L::kLockstepMany>(x, y, dim, inner, nb, log);
    else block<L::kLockstepFew>(x, y, dim, inner, nb, log);
  }

  // Softmax down the columns of [outer, dim, inner]: tasks of up to 256 columns of one outer index
  // under 32 rows (stage 2's chains overlap over more vectors), else 64.
  static void columns(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
    const int64_t width = dim < 32 ? kMaxColumns : 64;
    const int64_t blocks = (inner + width - 1) / width;
    const int64_t grain = std::max<int64_t>(1, 4096 * 64 / width / std::max<int64_t>(1, dim));
    parallel_for(outer * blocks, grain, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t o = t / blocks, i0 = (t % blocks) * width;
        any_block(x + o * dim * inner + i0, y + o * dim * inner + i0, dim, inner, std::min(width, inner - i0), log);
      }
    });
  }

  // Softmax over dim of [outer, dim, inner] in any layout: columns and short rows here, longer rows
  // (inner 1) by the ISA's rows(x, y, outer, dim, log).
  template <class Rows>
  static void softmax(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log, Rows rows) {
    if (inner > 1) columns(x, y, outer, dim, inner, log);
    else if (dim < kShortRow) short_rows(x, y, outer, dim, log);
    else rows(x, y, outer, dim, log);
  }

  // Short rows ([rows, dim], dim < kShortRow) as columns: 64 rows at a time transposed into a
  // per-thread [dim, 64] buffer, computed there as columns and transposed back (16384 x 4: 13 ns per
  // element one row at a time on AVX2).
  static constexpr int64_t kShortRow = 16;
  static void short_rows(const float* x, float* y, int64_t rows, int64_t dim, bool log) {
    constexpr int64_t width = 64;
    parallel_for((rows + width - 1) / width, std::max<int64_t>(1, 256 / dim), [&](int64_t begin, int64_t end) {
      float* buf = thread_scratch<float>(kShortRow * width, 3);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t r0 = t * width, nb = std::min(width, rows - r0);
        const float* xs = x + r0 * dim;
        float* ys = y + r0 * dim;
        for (int64_t r = 0; r < nb; ++r)
          for (int64_t d = 0; d < dim; ++d) buf[d * width + r] = xs[r * dim + d];
        any_block(buf, buf, dim, width, nb, log);
        for (int64_t r = 0; r < nb; ++r)
          for (int64_t d = 0; d < dim; ++d) ys[r * dim + d] = buf[d * width + r];
      }
    });
  }
};

}  // namespace
}  // namespace medconv
