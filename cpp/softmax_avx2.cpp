// Softmax / log-softmax over one dim, AVX2+FMA, float32 (float64 keeps the reference).
// Each softmax column is computed by one thread in a fixed order, so results do not depend on the
// thread split. No rounded x - max reaches exp: rows and columns whose |max| <= 1000 take exp(x) 2^-k
// (a scale that cancels), the others keep x - max exactly as hi + lo. Sums are accumulated in
// float64 (after float32 groups of up to 4 terms per lane), and log-softmax's x - logsumexp takes
// the logsumexp as a float hi + lo pair (two roundings): softmax within ~2.5e-7 relative, log-softmax
// within ~2.5e-7 max(1, |y|) (worst seen 1.8e-7, over rows of 3 to 8; torch 2.13's float32 kernels:
// 9e-7 and 4e-6).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "aligned.h"
#include "eltwise_avx2.h"
#include "memory.h"
#include "parallel.h"
#include "softmax_columns.h"
#include "softmax_common.h"
#include "stream_avx2.h"
#include "vecmath_avx2.h"

namespace medconv {

namespace {

using avx2::tail_mask;

inline __m256 exp_diff(__m256 x, __m256 m) { return vecmath::exp_diff<avx2::Avx2Vec>(x, m); }

// exp(x) 2^-k with one lowest and k for all K vectors (a row's).
template <int K>
inline void exp_scaled(__m256 (&v)[K], float lowest, __m256 k_biased) {
  vecmath::exp_scaled<avx2::Avx2Vec>(v, _mm256_set1_ps(lowest), k_biased);
}

inline __m256d add_wide(__m256d acc, __m128 v) { return _mm256_add_pd(acc, _mm256_cvtps_pd(v)); }

// The max of a row as the reference takes it: 0 for an all -inf row.
inline float fix_max(float m) { return m == -std::numeric_limits<float>::infinity() ? 0.0f : m; }

// Returns sum_i e(x[i]) over one row, storing e(x[i]) to es if kStore (e_of maps an array of
// vectors in place, 4 at a time where it can): groups of 4
// vectors summed in float32 (2 roundings per lane), the groups in float64. Meanwhile the row at
// `ahead` (if any) is fetched into L1, so its max pass does not stall on memory while the ALUs idle.
template <bool kStore, class Exp>
double exp_pass(const float* xs, float* es, int64_t dim, const float* ahead, Exp e_of) {
  const int64_t full = dim / 8 * 8, rest = dim - full;
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 32 <= full; i += 32) {
    if (ahead) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead + i), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(ahead + i + 16), _MM_HINT_T0);
    }
    __m256 e[4];
    for (int k = 0; k < 4; ++k) e[k] = _mm256_loadu_ps(xs + i + 8 * k);
    e_of(e);
    if (kStore)
      for (int k = 0; k < 4; ++k) _mm256_storeu_ps(es + i + 8 * k, e[k]);
    const __m256 g = _mm256_add_ps(_mm256_add_ps(e[0], e[1]), _mm256_add_ps(e[2], e[3]));
    s0 = add_wide(s0, _mm256_castps256_ps128(g));
    s1 = add_wide(s1, _mm256_extractf128_ps(g, 1));
  }
  if (ahead)
    for (int64_t j = i; j < dim; j += 16) _mm_prefetch(reinterpret_cast<const char*>(ahead + j), _MM_HINT_T0);
  for (; i < full; i += 8) {
    __m256 e[1] = {_mm256_loadu_ps(xs + i)};
    e_of(e);
    if (kStore) _mm256_storeu_ps(es + i, e[0]);
    s0 = add_wide(s0, _mm256_castps256_ps128(e[0]));
    s1 = add_wide(s1, _mm256_extractf128_ps(e[0], 1));
  }
  if (rest) {
    const __m256i tm = tail_mask(rest);
    __m256 e[1] = {_mm256_maskload_ps(xs + full, tm)};
    e_of(e);
    e[0] = _mm256_and_ps(e[0], _mm256_castsi256_ps(tm));
    if (kStore) _mm256_maskstore_ps(es + full, tm, e[0]);
    s0 = add_wide(s0, _mm256_castps256_ps128(e[0]));
    s1 = add_wide(s1, _mm256_extractf128_ps(e[0], 1));
  }
  return avx2::hsum_pd(_mm256_add_pd(s0, s1));
}

// One softmax per row of a contiguous [rows, dim] block (inner == 1).
// x, y: [rows, dim]
void softmax_rows(const float* x, float* y, int64_t rows, int64_t dim, bool log) {
  constexpr int64_t kAhead = 2, kAheadMaxDim = 2048;  // rows ahead that stay within 16 KiB of L1
  const int64_t full = dim / 8 * 8, rest = dim - full;
  const __m256i tm = tail_mask(rest);
  const __m256 tmf = _mm256_castsi256_ps(tm);
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  // A large output is streamed: exp goes to a per-thread row in L1, and the scaled rows to y with
  // streaming stores (y's lines are then never read), one run per task where rows are whole vectors.
  const bool stream = rows * dim * 4 >= kStreamStoreBytes;
  parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, dim)), [&](int64_t begin, int64_t end) {
    float* row_buf = stream ? thread_scratch<float>(dim + 8, 3) : nullptr;
    avx2::VectorStream run(y + begin * dim);
    for (int64_t row = begin; row < end; ++row) {
      const float* xs = x + row * dim;
      float* ys = y + row * dim;
      float* es = stream && !log ? row_buf : ys;  // where exp(x - m) waits for 1 / s
      // ys[0, full) = out(v) for each vector v
      auto store_out = [&, vectors = full / 8](auto out) {
        if (!stream) {
          for (int64_t v = 0; v < vectors; ++v) _mm256_storeu_ps(ys + 8 * v, out(v));
          return;
        }
        if (rest) run = avx2::VectorStream(ys);  // the masked tail ends each row's run
        for (int64_t v = 0; v < vectors; ++v) run.put(out(v));
        if (rest) run.finish();
      };
      // m = max_i x[i] (a NaN may be dropped here: it reaches the sum and makes the row NaN)
      __m256 m = ninf, m1v = ninf, m2 = ninf, m3 = ninf;  // four chains: max's latency, not its throughput
      int64_t i = 0;
      for (; i + 32 <= full; i += 32) {
        m = _mm256_max_ps(m, _mm256_loadu_ps(xs + i));
        m1v = _mm256_max_ps(m1v, _mm256_loadu_ps(xs + i + 8));
        m2 = _mm256_max_ps(m2, _mm256_loadu_ps(xs + i + 16));
        m3 = _mm256_max_ps(m3, _mm256_loadu_ps(xs + i + 24));
      }
      for (; i < full; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(xs + i));
      m = _mm256_max_ps(_mm256_max_ps(m, m1v), _mm256_max_ps(m2, m3));
      if (rest) m = _mm256_max_ps(m, _mm256_blendv_ps(ninf, _mm256_maskload_ps(xs + full, tm), tmf));
      const float m1 = fix_max(avx2::hmax_ps(m));
      const __m256 mx = _mm256_set1_ps(m1);
      // e[i] = exp(x[i] - m) into es (softmax only), sum = sum_i e[i]. Rows with |m| <= 1000 take
      // exp(x[i]) 2^-k instead, the same up to a factor that cancels (14% faster); log-softmax then
      // divides the sum by that factor as computed, so a lone or dominant logit still gives exactly 0.
      const float* ahead = row + kAhead < rows && dim <= kAheadMaxDim ? xs + kAhead * dim : nullptr;
      auto pass = [&](auto e_of) {  // log-softmax needs only the sum
        return log ? exp_pass<false>(xs, nullptr, dim, ahead, e_of) : exp_pass<true>(xs, es, dim, ahead, e_of);
      };
      double sum;
      const bool scaled = std::fabs(m1) <= kScaledMaxAbs;  // dim >= 16 here (softmax_f32)
      if (scaled) {
        const __m256 k = _mm256_set1_ps(static_cast<float>(std::floor(static_cast<double>(m1) * 1.4426950408889634) - 127.0));
        const float lowest = m1 - 89.0f;  // there n - k <= -127: -inf gives exactly 0
        sum = pass([&](auto& v) { exp_scaled(v, lowest, k); });
        if (log) {  // sum_i exp(x[i] - m)
          __m256 e_max[1] = {mx};
          exp_scaled(e_max, lowest, k);
          sum /= _mm256_cvtss_f32(e_max[0]);
        }
      } else {
        sum = pass([&](auto& v) {
          for (__m256& x : v) x = exp_diff(x, mx);
        });
      }
      if (log) {
        const LogSubtrahends t = log_subtrahends(m1, std::log(sum), scaled);
        const __m256 a = _mm256_set1_ps(t.a), b = _mm256_set1_ps(t.b), c = _mm256_set1_ps(t.c);
        auto out = [&](__m256 v) { return _mm256_sub_ps(_mm256_sub_ps(_mm256_sub_ps(v, a), b), c); };
        store_out([&](int64_t v) { return out(_mm256_loadu_ps(xs + 8 * v)); });
        if (rest) _mm256_maskstore_ps(ys + full, tm, out(_mm256_maskload_ps(xs + full, tm)));
      } else {
        // y[i] = e[i] / sum
        const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / sum));
        store_out([&](int64_t v) { return _mm256_mul_ps(_mm256_loadu_ps(es + 8 * v), inv); });
        if (rest) _mm256_maskstore_ps(ys + full, tm, _mm256_mul_ps(_mm256_maskload_ps(es + full, tm), inv));
      }
    }
    if (stream) {
      run.finish();
      _mm_sfence();  // the streamed stores are visible before the call returns
    }
  });
}

// softmax_columns.h's lanes: 8 floats, float64 in two halves of 4.
struct Avx2Columns {
  using V = avx2::Avx2Vec;
  using D = __m256d;
  static constexpr int kLanes = 8;
  // Vectors in lockstep in stage 1: a whole 64 columns at 8 or more rows (each row 4 cache lines:
  // 1.3-1.6x faster than 16 columns at 8 to 32 rows); else 16 (per-column work dominates there, and
  // 64 ran 1.1-1.2x slower).
  static constexpr int kLockstepMany = 8, kLockstepFew = 2;
  using Tail = int;  // lanes in use
  static Tail all_lanes() { return 8; }
  static Tail first(int64_t n) { return static_cast<int>(std::min<int64_t>(n, 8)); }
  static __m256 load(const float* p, Tail t) { return t == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(t)); }
  static void store(float* p, __m256 v, Tail t) {
    if (t == 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail_mask(t), v);
  }
  static __m256 floor(__m256 v) { return _mm256_floor_ps(v); }
  static bool all(__m256 m) { return _mm256_movemask_ps(m) == 0xFF; }
  static D low(__m256 v) { return avx2::low_pd(v); }
  static D high(__m256 v) { return avx2::high_pd(v); }
  static __m256 narrow(D lo, D hi) { return avx2::to_ps(lo, hi); }
  static D set1(double v) { return _mm256_set1_pd(v); }
  static D add(D a, D b) { return _mm256_add_pd(a, b); }
  static D sub(D a, D b) { return _mm256_sub_pd(a, b); }
  static D div(D a, D b) { return _mm256_div_pd(a, b); }
  static D mul(D a, D b) { return _mm256_mul_pd(a, b); }
  static D fmadd(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
  // s >= 0 as 2^e f, f in [sqrt(1/2), sqrt(2)) (for s normal)
  static void split_exponent(D s, D& f, D& e) {
    const __m256i bits = _mm256_castpd_si256(s);
    f = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi64x(0x000FFFFFFFFFFFFFLL)),
                                            _mm256_set1_epi64x(0x3FF0000000000000LL)));  // [1, 2)
    const __m256d big = _mm256_cmp_pd(f, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
    f = _mm256_blendv_pd(f, _mm256_mul_pd(f, _mm256_set1_pd(0.5)), big);
    __m256i biased = _mm256_srli_epi64(bits, 52);                 // s >= 0: no sign bit
    biased = _mm256_sub_epi64(biased, _mm256_castpd_si256(big));  // big lanes are all ones: + 1
    // the exponent as a double: 2^52 + biased, exactly, minus 2^52 + 1023
    e = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(biased, _mm256_set1_epi64x(0x4330000000000000LL))),
                      _mm256_set1_pd(4503599627370496.0 + 1023.0));
  }
  // r where s is finite and nonzero, -inf where 0, s where +inf or NaN
  static D log_specials(D s, D r) {
    const D zero = _mm256_cmp_pd(s, _mm256_setzero_pd(), _CMP_EQ_OQ);
    const D finite = _mm256_cmp_pd(s, _mm256_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ);
    return _mm256_blendv_pd(_mm256_blendv_pd(s, r, finite), _mm256_set1_pd(-std::numeric_limits<double>::infinity()), zero);
  }
};
using Columns = SoftmaxColumns<Avx2Columns>;

void softmax_f32(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  Columns::softmax(x, y, outer, dim, inner, log, softmax_rows);
}

}  // namespace

void add_softmax_avx2(KernelTable& t) {
  t.f32.softmax = softmax_f32;
}

}  // namespace medconv
