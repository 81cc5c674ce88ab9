// Softmax / log-softmax on AVX-512F. Rows (inner == 1, 16 or more per row): softmax_avx2.cpp's recipe (the max; exp(x) 2^-k for rows with |max| <= 1000, else exp(x - max)
// with the difference split exactly; float32 groups of 4 vectors summed in float64; log-softmax's
// three rounded subtractions) in 16 lanes. The groups hold other elements than AVX2's 8-lane ones,
// so a row's sum may round differently: within the same bound of the float64 reference.
// Columns and short rows: softmax_columns.h in 16 lanes, the same bits as AVX2's.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>

#include "avx512_kernels.h"
#include "memory.h"
#include "parallel.h"
#include "softmax_columns.h"
#include "softmax_common.h"
#include "vec_avx512.h"

namespace medconv {
namespace {

using V = avx512::Avx512Vec;
using avx512::first_lanes;

// vecmath.h's softmax exps, over K vectors.
template <int K>
inline void exp_scaled(__m512 (&v)[K], __m512 lowest, __m512 k_biased) {
  vecmath::exp_scaled<V>(v, lowest, k_biased);
}
template <int K>
inline void exp_diff(__m512 (&v)[K], __m512 m) {
  for (__m512& x : v) x = vecmath::exp_diff<V>(x, m);
}

// A vector's low and high 8 lanes, by the all-lanes masked extract: GCC 12 warns about the unmasked
// one's undefined source (its 512-to-256 cast is one too). AVX and SIMDe's forms elsewhere, so that
// tests/native can run this file on AVX2.
template <int kHalf>
inline __m256 half8(__m512 v) {
  return _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xFF, _mm512_castps_pd(v), kHalf));
}
inline __m256 low8(__m512 v) { return half8<0>(v); }
inline __m256 high8(__m512 v) { return half8<1>(v); }

// Float64 sums of 16 lanes, four each.
struct WideSum {
  __m256d s[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()};
  void add(__m512 v) {
    const __m256 lo = low8(v), hi = high8(v);
    s[0] = _mm256_add_pd(s[0], _mm256_cvtps_pd(_mm256_castps256_ps128(lo)));
    s[1] = _mm256_add_pd(s[1], _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)));
    s[2] = _mm256_add_pd(s[2], _mm256_cvtps_pd(_mm256_castps256_ps128(hi)));
    s[3] = _mm256_add_pd(s[3], _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1)));
  }
  double total() const {
    const __m256d a = _mm256_add_pd(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3]));
    const __m128d b = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(b, _mm_unpackhi_pd(b, b)));
  }
};

inline float hmax_ps(__m512 v) {
  const __m256 a = _mm256_max_ps(low8(v), high8(v));
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_max_ss(b, _mm_movehdup_ps(b)));
}

// Returns sum_i e(x[i]) over one row, storing e(x[i]) to es if es (e_of maps an array of vectors in
// place): float32 groups of 4 vectors, the groups in float64. The row at `ahead` (if any) is fetched
// into L1 meanwhile.
template <class Exp>
double exp_pass(const float* xs, float* es, int64_t dim, const float* ahead, Exp e_of) {
  const int64_t full = dim / 16 * 16, rest = dim - full;
  WideSum sum;
  int64_t i = 0;
  for (; i + 64 <= full; i += 64) {
    if (ahead)
      for (int l = 0; l < 4; ++l) _mm_prefetch(reinterpret_cast<const char*>(ahead + i + 16 * l), _MM_HINT_T0);
    __m512 e[4];
    for (int k = 0; k < 4; ++k) e[k] = _mm512_loadu_ps(xs + i + 16 * k);
    e_of(e);
    if (es)
      for (int k = 0; k < 4; ++k) _mm512_storeu_ps(es + i + 16 * k, e[k]);
    sum.add(_mm512_add_ps(_mm512_add_ps(e[0], e[1]), _mm512_add_ps(e[2], e[3])));
  }
  if (ahead)
    for (int64_t j = i; j < dim; j += 16) _mm_prefetch(reinterpret_cast<const char*>(ahead + j), _MM_HINT_T0);
  for (; i < full; i += 16) {
    __m512 e[1] = {_mm512_loadu_ps(xs + i)};
    e_of(e);
    if (es) _mm512_storeu_ps(es + i, e[0]);
    sum.add(e[0]);
  }
  if (rest) {
    const __mmask16 tm = first_lanes(rest);
    __m512 e[1] = {_mm512_maskz_loadu_ps(tm, xs + full)};
    e_of(e);
    e[0] = _mm512_maskz_mov_ps(tm, e[0]);
    if (es) _mm512_mask_storeu_ps(es + full, tm, e[0]);
    sum.add(e[0]);
  }
  return sum.total();
}

// ys[0, dim) = out(j) for the 16 elements from j (a function of the offset), with streaming stores on
// the row's whole 64-byte lines (stream) and plain masked ones on its partial first and last lines.
template <class Out>
inline void write_row(float* ys, int64_t dim, bool stream, Out out) {
  int64_t j = 0;
  if (stream) {
    const int64_t head = std::min<int64_t>(dim, ((64 - (reinterpret_cast<uintptr_t>(ys) & 63)) & 63) / 4);
    if (head) _mm512_mask_storeu_ps(ys, first_lanes(head), out(0));
    for (j = head; j + 16 <= dim; j += 16) _mm512_stream_ps(ys + j, out(j));
  } else {
    for (; j + 16 <= dim; j += 16) _mm512_storeu_ps(ys + j, out(j));
  }
  if (j < dim) _mm512_mask_storeu_ps(ys + j, first_lanes(dim - j), out(j));
}

// The per-thread row buffer where exp(x - m) waits for 1 / sum (16 floats past the row: whole-vector
// reads). Plain C allocation: a std::vector instantiated in this AVX-512 file could be merged at link
// time with AVX2 files' copies.
float* row_buffer(int64_t dim) {
  thread_local float* buf = nullptr;
  thread_local int64_t capacity = 0;
  if (capacity < dim + 16) {
    std::free(buf);
    capacity = 0;
    buf = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>((dim + 16) * 4 + 63) / 64 * 64));
    if (!buf) throw std::bad_alloc();
    capacity = dim + 16;
  }
  return buf;
}

// x, y: [rows, dim], dim >= 16
void softmax_rows(const float* x, float* y, int64_t rows, int64_t dim, bool log) {
  constexpr int64_t kAhead = 2, kAheadMaxDim = 2048;
  const bool stream = rows * dim * 4 >= kStreamStoreBytes;
  const int64_t full = dim / 16 * 16, rest = dim - full;
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  parallel_for(rows, std::max<int64_t>(1, 32768 / dim), [&](int64_t begin, int64_t end) {
    float* es_buf = log ? nullptr : row_buffer(dim);
    for (int64_t row = begin; row < end; ++row) {
      const float* xs = x + row * dim;
      float* ys = y + row * dim;
      __m512 m[4] = {ninf, ninf, ninf, ninf};  // four chains: max's latency, not its throughput
      int64_t i = 0;
      for (; i + 64 <= full; i += 64)
        for (int k = 0; k < 4; ++k) m[k] = V::max(m[k], _mm512_loadu_ps(xs + i + 16 * k));
      for (; i < full; i += 16) m[0] = V::max(m[0], _mm512_loadu_ps(xs + i));
      if (rest) {
        const __mmask16 tm = first_lanes(rest);
        m[0] = V::max(m[0], V::select(tm, _mm512_maskz_loadu_ps(tm, xs + full), ninf));
      }
      const float mr = hmax_ps(V::max(V::max(m[0], m[1]), V::max(m[2], m[3])));
      const float m1 = mr == -std::numeric_limits<float>::infinity() ? 0.0f : mr;
      const __m512 mx = _mm512_set1_ps(m1);
      const float* ahead = row + kAhead < rows && dim <= kAheadMaxDim ? xs + kAhead * dim : nullptr;
      double sum;
      const bool scaled = std::fabs(m1) <= kScaledMaxAbs;
      __m512 lowest = mx, kb = mx;
      if (scaled) {
        kb = _mm512_set1_ps(static_cast<float>(std::floor(static_cast<double>(m1) * 1.4426950408889634) - 127.0));
        lowest = _mm512_set1_ps(m1 - 89.0f);  // there n - k <= -127: -inf gives exactly 0
        sum = exp_pass(xs, es_buf, dim, ahead, [&](auto& v) { exp_scaled(v, lowest, kb); });
        if (log) {  // sum_i exp(x[i] - m)
          __m512 e_max[1] = {mx};
          exp_scaled(e_max, lowest, kb);
          sum /= _mm256_cvtss_f32(low8(e_max[0]));
        }
      } else {
        sum = exp_pass(xs, es_buf, dim, ahead, [&](auto& v) { exp_diff(v, mx); });
      }
      if (log) {
        const LogSubtrahends t = log_subtrahends(m1, std::log(sum), scaled);
        const __m512 a = _mm512_set1_ps(t.a), b = _mm512_set1_ps(t.b), c = _mm512_set1_ps(t.c);
        write_row(ys, dim, stream, [&](int64_t j) {
          const __m512 v = _mm512_maskz_loadu_ps(first_lanes(dim - j), xs + j);
          return _mm512_sub_ps(_mm512_sub_ps(_mm512_sub_ps(v, a), b), c);
        });
      } else {
        const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / sum));
        write_row(ys, dim, stream, [&](int64_t j) { return _mm512_mul_ps(_mm512_loadu_ps(es_buf + j), inv); });
      }
    }
    if (stream) _mm_sfence();  // the streamed stores are visible before the call returns
  });
}

// softmax_columns.h's lanes: 16 floats, float64 in two halves of 8. Conversions by their all-lanes
// masked forms (GCC 12 warns about the unmasked ones' undefined source).
inline __m512d wide8(__m256 v) { return _mm512_maskz_cvtps_pd(0xFF, v); }
inline __m256 narrow8(__m512d v) { return _mm512_maskz_cvtpd_ps(0xFF, v); }

struct Avx512Columns {
  using V = avx512::Avx512Vec;
  using D = __m512d;
  using Tail = __mmask16;
  static constexpr int kLanes = 16;
  // Vectors in lockstep in stage 1: 64 columns at 8 or more rows (1.3-2.3x faster than 16 at 16 to 300
  // rows); else 16 (at 4 rows, 64 ran 1.15-1.2x slower, 32 1.1x).
  static constexpr int kLockstepMany = 4, kLockstepFew = 1;
  static Tail all_lanes() { return 0xFFFF; }
  static Tail first(int64_t n) { return first_lanes(n); }
  static __m512 load(const float* p, Tail t) { return _mm512_maskz_loadu_ps(t, p); }
  static void store(float* p, __m512 v, Tail t) { _mm512_mask_storeu_ps(p, t, v); }
  static __m512 floor(__m512 v) { return _mm512_maskz_roundscale_ps(0xFFFF, v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static bool all(__mmask16 m) { return m == 0xFFFF; }
  static D low(__m512 v) { return wide8(low8(v)); }
  static D high(__m512 v) { return wide8(high8(v)); }
  static __m512 narrow(D lo, D hi) {
    const __m512d joined = _mm512_maskz_insertf64x4(0xFF, _mm512_castpd256_pd512(_mm256_castps_pd(narrow8(lo))), _mm256_castps_pd(narrow8(hi)), 1);
    return _mm512_castpd_ps(joined);
  }
  static D set1(double v) { return _mm512_set1_pd(v); }
  static D add(D a, D b) { return _mm512_add_pd(a, b); }
  static D sub(D a, D b) { return _mm512_sub_pd(a, b); }
  static D div(D a, D b) { return _mm512_div_pd(a, b); }
  static D mul(D a, D b) { return _mm512_mul_pd(a, b); }
  static D fmadd(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
  // softmax_avx2.cpp's split_exponent and log_specials in 8 lanes, the same operations
  static void split_exponent(D s, D& f, D& e) {
    const __m512i bits = _mm512_castpd_si512(s);
    f = _mm512_castsi512_pd(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi64(0x000FFFFFFFFFFFFFLL)),
                                            _mm512_set1_epi64(0x3FF0000000000000LL)));  // [1, 2)
    const __mmask8 big = _mm512_cmp_pd_mask(f, _mm512_set1_pd(1.4142135623730951), _CMP_GT_OQ);
    f = _mm512_mask_mul_pd(f, big, f, _mm512_set1_pd(0.5));
    __m512i biased = _mm512_maskz_srli_epi64(0xFF, bits, 52);  // s >= 0: no sign bit
    biased = _mm512_mask_add_epi64(biased, big, biased, _mm512_set1_epi64(1));
    e = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_or_si512(biased, _mm512_set1_epi64(0x4330000000000000LL))),
                      _mm512_set1_pd(4503599627370496.0 + 1023.0));
  }
  static D log_specials(D s, D r) {
    const __mmask8 zero = _mm512_cmp_pd_mask(s, _mm512_setzero_pd(), _CMP_EQ_OQ);
    const __mmask8 finite = _mm512_cmp_pd_mask(s, _mm512_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ);
    return _mm512_mask_blend_pd(zero, _mm512_mask_blend_pd(finite, s, r), _mm512_set1_pd(-std::numeric_limits<double>::infinity()));
  }
};
using Columns = SoftmaxColumns<Avx512Columns>;

void softmax_f32(const float* x, float* y, int64_t outer, int64_t dim, int64_t inner, bool log) {
  Columns::softmax(x, y, outer, dim, inner, log, softmax_rows);
}

}  // namespace

void add_softmax_avx512(KernelTable& t) {
  t.f32.softmax = softmax_f32;
}

}  // namespace medconv
