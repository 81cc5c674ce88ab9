// Standalone check of one ISA's kernel table against the reference kernels, for ISAs this machine
// cannot run natively: built by tests/test_native_isa.py as
//   - AArch64 (-DMEDCONV_ARM64=1, with dispatch.cpp and the NEON files), run under qemu-aarch64;
//   - x86-64 with the AVX-512 files compiled against SIMDe's portable AVX-512 intrinsics
//     (-include avx512_on_avx2.h, -DISA_CHECK_AVX512), run natively on an AVX2 machine.
// Random conv (1d/2d/3d, groups, stride, padding, dilation, bias, relu), up-conv (conv_subpixel) and
// linear shapes, each at 1-3 threads, with MEDCONV_CONV_ALGO unset (the plan's choice) and =gemm
// (every shape through the ISA's implicit GEMM). Prints the max relative error, |y - ref| / max(1, max |ref|), per
// family; exits 1 past the tolerance (argv[1], default 1e-5) or on a plan/dispatch mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_subpixel.h"
#include "dispatch.h"
#include "parallel.h"
#include "ref_kernels.h"

using namespace medconv;

namespace {

std::mt19937_64 rng(12345);

int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

std::vector<float> randn(int64_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

double rel_error(const std::vector<float>& y, const std::vector<float>& ref, bool* nan_mismatch) {
  double scale = 1.0, diff = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(ref[i]) || std::isnan(y[i])) {
      if (std::isnan(ref[i]) != std::isnan(y[i])) *nan_mismatch = true;
      continue;
    }
    scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
    diff = std::max(diff, static_cast<double>(std::fabs(y[i] - ref[i])));
  }
  return diff / scale;
}

const Kernels<float>& table_under_test(std::string* name) {
#if defined(ISA_CHECK_AVX512)
  // The AVX-512 table over a reference base: x86's dispatch.cpp would pull in every AVX2 file, so
  // this build leaves it out and fills the entries under test itself.
  static KernelTable table = [] {
    KernelTable base{};
    base.isa = Isa::scalar;
    base.f32.conv_forward = conv_forward_ref<float>;
    base.f32.linear = linear_ref<float>;
    base.f32.unary = unary_ref<float>;
    base.f32.softmax = softmax_ref<float>;
    return avx512_table(base);
  }();
  *name = table.isa == Isa::avx512 ? "avx512" : "not avx512";
  return table.f32;
#else
  // Through the dispatch, as the extension does: "neon" must be supported and chosen by "auto".
  const auto isas = supported_isas();
  if (isas.empty() || isa_name(isas.back()) != "neon") throw std::runtime_error("dispatch does not offer neon");
  select_isa("auto");
  *name = isa_name(kernels().isa);
  if (*name != "neon") throw std::runtime_error("auto selected " + *name + ", not neon");
  return kernels_for<float>();
#endif
}

struct Stats {
  double max_err = 0.0;
  int cases = 0;
  bool nan_mismatch = false;
};

// One random conv; dims = 1, 2 or 3 spatial dims (the leading ones size 1).
void conv_case(const Kernels<float>& k, int dims, Stats& st, bool with_nan) {
  ConvShape s{};
  s.groups = pick(0, 3) == 0 ? pick(2, 3) : 1;
  s.N = pick(1, 2);
  s.C = s.groups * pick(1, 12);
  s.OC = s.groups * pick(1, 20);
  int64_t in[3] = {1, 1, 1}, ker[3] = {1, 1, 1};
  for (int a = 3 - dims; a < 3; ++a) {
    in[a] = dims == 3 ? pick(3, 9) : dims == 2 ? pick(4, 20) : pick(8, 70);
    ker[a] = pick(1, 3) == 1 ? 1 : pick(2, 5) % 2 == 0 ? 3 : pick(1, 5);
    s.stride[a] = pick(1, 3) == 3 ? 2 : 1;
    s.dilation[a] = pick(1, 4) == 4 ? 2 : 1;
    s.pad[a] = pick(0, (ker[a] - 1) * s.dilation[a]);
  }
  for (int a = 0; a < 3 - dims; ++a) {
    s.stride[a] = s.dilation[a] = 1;
    s.pad[a] = 0;
  }
  s.D = in[0], s.H = in[1], s.W = in[2];
  s.KD = ker[0], s.KH = ker[1], s.KW = ker[2];
  int64_t out[3];
  for (int a = 0; a < 3; ++a) {
    out[a] = (in[a] + 2 * s.pad[a] - s.dilation[a] * (ker[a] - 1) - 1) / s.stride[a] + 1;
    if (out[a] < 1) return;  // kernel larger than the padded input: not a valid conv
  }
  s.OD = out[0], s.OH = out[1], s.OW = out[2];
  const int64_t Cg = s.C / s.groups;
  auto x = randn(s.N * s.C * s.D * s.H * s.W);
  auto w = randn(s.OC * Cg * s.KD * s.KH * s.KW);
  auto b = randn(s.OC);
  if (with_nan) x[x.size() / 2] = NAN;
  const bool has_bias = pick(0, 3) != 0;
  const Activation act = pick(0, 1) ? Activation::relu : Activation::none;
  const int64_t ny = s.N * s.OC * s.OD * s.OH * s.OW;
  std::vector<float> y(static_cast<size_t>(ny), -777.0f), ref(static_cast<size_t>(ny));
  conv_forward_ref<float>(s, x.data(), w.data(), has_bias ? b.data() : nullptr, ref.data(), act);
  k.conv_forward(s, x.data(), w.data(), has_bias ? b.data() : nullptr, y.data(), act);
  const double e = rel_error(y, ref, &st.nan_mismatch);
  if (e > st.max_err) st.max_err = e;
  ++st.cases;
  if (e > 1e-4 || st.nan_mismatch)
    std::printf("  bad conv: N=%lld C=%lld OC=%lld G=%lld in=%lldx%lldx%lld k=%lldx%lldx%lld err=%.3g\n",
                (long long)s.N, (long long)s.C, (long long)s.OC, (long long)s.groups, (long long)s.D,
                (long long)s.H, (long long)s.W, (long long)s.KD, (long long)s.KH, (long long)s.KW, e);
}

// Shapes chosen to cross every blocking boundary: K past KC (slices added to C), M and N not
// multiples of the tile, columns past NC.
void conv_fixed_cases(const Kernels<float>& k, Stats& st) {
  struct Fixed {
    int64_t C, OC, H, W, KH, KW, stride, pad, dil, groups;
  };
  const Fixed cases[] = {
      {40, 17, 9, 37, 3, 3, 1, 1, 1, 1},   // K = 360 > KC, OC = 17 (a 1-row tail), 333 columns
      {64, 8, 6, 70, 1, 1, 1, 0, 1, 1},    // pointwise, K = 64, 420 columns
      {300, 9, 3, 5, 1, 1, 1, 0, 1, 1},    // pointwise, K = 300 > 256
      {16, 33, 11, 45, 3, 3, 2, 1, 1, 1},  // stride 2: the strided row packer
      {12, 24, 10, 40, 3, 3, 1, 2, 2, 2},  // grouped, dilated, padded
      {8, 16, 5, 100, 5, 5, 1, 2, 1, 1},   // 5x5, wide rows
      {16, 20, 1, 600, 1, 7, 2, 3, 1, 1},  // 1D (H = 1: no padding or stride along H): the 1D tiles
      {6, 6, 13, 48, 3, 3, 1, 1, 1, 6},    // depthwise 3x3 "same", rows of 3 x 16: AVX-512's depthwise kernel
      {1, 1, 5, 16, 3, 3, 1, 1, 1, 1},     // one channel, one 16-column block (both edges), 5 rows of 8
  };
  for (const Fixed& f : cases) {
    ConvShape s{};
    s.N = 2, s.C = f.C, s.D = 1, s.H = f.H, s.W = f.W, s.OC = f.OC, s.KD = 1, s.KH = f.KH, s.KW = f.KW;
    s.groups = f.groups;
    const bool one_row = f.H == 1 && f.KH == 1;
    s.stride[0] = 1, s.stride[1] = one_row ? 1 : f.stride, s.stride[2] = f.stride;
    s.pad[0] = 0, s.pad[1] = one_row ? 0 : f.pad, s.pad[2] = f.pad;
    s.dilation[0] = 1, s.dilation[1] = s.dilation[2] = f.dil;
    s.OD = 1;
    s.OH = (s.H + 2 * s.pad[1] - f.dil * (f.KH - 1) - 1) / s.stride[1] + 1;
    s.OW = (s.W + 2 * f.pad - f.dil * (f.KW - 1) - 1) / f.stride + 1;
    auto x = randn(s.N * s.C * s.H * s.W), w = randn(s.OC * (s.C / s.groups) * s.KH * s.KW), b = randn(s.OC);
    const int64_t ny = s.N * s.OC * s.OH * s.OW;
    for (Activation act : {Activation::none, Activation::relu}) {
      std::vector<float> y(static_cast<size_t>(ny), -777.0f), ref(static_cast<size_t>(ny));
      conv_forward_ref<float>(s, x.data(), w.data(), b.data(), ref.data(), act);
      k.conv_forward(s, x.data(), w.data(), b.data(), y.data(), act);
      st.max_err = std::max(st.max_err, rel_error(y, ref, &st.nan_mismatch));
      ++st.cases;
    }
  }
}

// One random input gradient / up-conv that conv_subpixel.h takes (strides 1-3, kernels 1-4,
// paddings, 1-3 dims, groups, channel counts past one block of rows), against a plain scatter plus
// the bias. Returns false (no case) where the random shape is not one it takes.
bool subpixel_case(const Kernels<float>& k, int dims, Stats& st) {
  ConvShape s{};
  s.groups = pick(0, 3) == 0 ? 2 : 1;
  s.N = pick(1, 2);
  s.C = s.groups * (pick(0, 2) == 0 ? pick(20, 40) : pick(1, 6));  // gx's channels
  s.OC = s.groups * pick(1, 20);
  int64_t ker[3] = {1, 1, 1}, in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  for (int a = 0; a < 3; ++a) s.stride[a] = s.dilation[a] = 1, s.pad[a] = 0;
  for (int a = 3 - dims; a < 3; ++a) {
    ker[a] = pick(1, 4);
    s.stride[a] = pick(1, 3);
    s.pad[a] = pick(0, ker[a] - 1);
    in[a] = dims == 3 ? pick(1, 10) : dims == 2 ? pick(1, 24) : pick(1, 900);
    out[a] = (in[a] + 2 * s.pad[a] - ker[a]) / s.stride[a] + 1;
    if (in[a] + 2 * s.pad[a] < ker[a] || out[a] < 1) return false;
  }
  s.KD = ker[0], s.KH = ker[1], s.KW = ker[2];
  s.D = in[0], s.H = in[1], s.W = in[2];
  s.OD = out[0], s.OH = out[1], s.OW = out[2];
  if (!conv_subpixel::applicable(s)) return false;
  const int64_t Cg = s.C / s.groups, OCg = s.OC / s.groups, kvol = s.KD * s.KH * s.KW;
  auto gy = randn(s.N * s.OC * s.OD * s.OH * s.OW), w = randn(s.OC * Cg * kvol), b = randn(s.C);
  const bool has_bias = pick(0, 2) != 0;
  const int64_t nx = s.N * s.C * s.D * s.H * s.W;
  std::vector<float> gx(static_cast<size_t>(nx), -777.0f), ref(static_cast<size_t>(nx));
  // ref[n, c, od*sd - pd + kd, ...] += w[oc, c, kd, kh, kw] gy[n, oc, od, oh, ow], from the bias or 0
  for (int64_t i = 0; i < nx; ++i) ref[i] = has_bias ? b[i / (s.D * s.H * s.W) % s.C] : 0.0f;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oc = 0; oc < s.OC; ++oc)
      for (int64_t od = 0; od < s.OD; ++od)
        for (int64_t oh = 0; oh < s.OH; ++oh)
          for (int64_t ow = 0; ow < s.OW; ++ow)
            for (int64_t cl = 0; cl < Cg; ++cl)
              for (int64_t t = 0; t < kvol; ++t) {
                const int64_t d = od * s.stride[0] - s.pad[0] + t / (s.KH * s.KW);
                const int64_t h = oh * s.stride[1] - s.pad[1] + t / s.KW % s.KH;
                const int64_t x = ow * s.stride[2] - s.pad[2] + t % s.KW;
                if (d < 0 || d >= s.D || h < 0 || h >= s.H || x < 0 || x >= s.W) continue;
                const int64_t c = oc / OCg * Cg + cl;
                ref[(((n * s.C + c) * s.D + d) * s.H + h) * s.W + x] +=
                    w[(oc * Cg + cl) * kvol + t] * gy[(((n * s.OC + oc) * s.OD + od) * s.OH + oh) * s.OW + ow];
              }
  k.conv_subpixel(s, gy.data(), w.data(), has_bias ? b.data() : nullptr, gx.data());
  const double e = rel_error(gx, ref, &st.nan_mismatch);
  st.max_err = std::max(st.max_err, e);
  ++st.cases;
  if (e > 1e-4)
    std::printf("  bad subpixel: N=%lld C=%lld OC=%lld G=%lld in=%lldx%lldx%lld k=%lldx%lldx%lld err=%.3g\n",
                (long long)s.N, (long long)s.C, (long long)s.OC, (long long)s.groups, (long long)s.D,
                (long long)s.H, (long long)s.W, (long long)s.KD, (long long)s.KH, (long long)s.KW, e);
  return true;
}

void linear_case(const Kernels<float>& k, int64_t M, int64_t N, int64_t K, bool has_bias, Stats& st) {
  auto x = randn(M * K), w = randn(N * K), b = randn(N);
  std::vector<float> y(static_cast<size_t>(M * N), -777.0f), ref(static_cast<size_t>(M * N));
  linear_ref<float>(x.data(), w.data(), has_bias ? b.data() : nullptr, ref.data(), M, N, K);
  k.linear(x.data(), w.data(), has_bias ? b.data() : nullptr, y.data(), M, N, K);
  st.max_err = std::max(st.max_err, rel_error(y, ref, &st.nan_mismatch));
  ++st.cases;
}

// Every unary op over random values and the special ones; the ISA's relu and leaky_relu (and the
// ops it leaves to the reference) must give the reference's bits. Returns the ops that differ.
template <class T>
int unary_mismatches(const Kernels<T>& k, const Kernels<T>& ref) {
  const int64_t n = 1003;  // odd: vector tails
  std::vector<T> x(static_cast<size_t>(n));
  std::normal_distribution<double> d(0.0, 4.0);
  for (auto& v : x) v = static_cast<T>(d(rng));
  const T special[] = {T(0), -T(0), T(NAN), T(INFINITY), -T(INFINITY), T(1e30), T(-1e30), T(1e-40)};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); ++i) x[i * 7] = special[i];
  int bad = 0;
  for (int op = 0; op <= static_cast<int>(UnaryOp::gelu_tanh); ++op) {
    std::vector<T> y(x.size()), r(x.size());
    k.unary(static_cast<UnaryOp>(op), x.data(), y.data(), n, T(0.01));
    ref.unary(static_cast<UnaryOp>(op), x.data(), r.data(), n, T(0.01));
    if (std::memcmp(y.data(), r.data(), y.size() * sizeof(T)) != 0) {
      std::printf("  unary op %d (%zu-byte) differs from the reference\n", op, sizeof(T));
      ++bad;
    }
  }
  return bad;
}

#if defined(ISA_CHECK_AVX512)
// The table's float32 activations against the reference over the same values: relu and leaky_relu
// bitwise, the polynomial ones within tol * max(1, |ref|), non-finite results equal. Returns the ops
// that differ.
int unary_errors(const Kernels<float>& k, double tol) {
  const int64_t n = 1003;  // odd: vector tails
  std::vector<float> x(static_cast<size_t>(n));
  std::normal_distribution<double> d(0.0, 4.0);
  for (auto& v : x) v = static_cast<float>(d(rng));
  const float special[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 88.0f, -88.0f, 20.0f, -20.0f};
  for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); ++i) x[i * 7] = special[i];
  int bad = 0;
  for (int op = 0; op <= static_cast<int>(UnaryOp::gelu_tanh); ++op) {
    const bool exact = op == static_cast<int>(UnaryOp::relu) || op == static_cast<int>(UnaryOp::leaky_relu);
    std::vector<float> y(x.size()), r(x.size());
    k.unary(static_cast<UnaryOp>(op), x.data(), y.data(), n, 0.01f);
    unary_ref<float>(static_cast<UnaryOp>(op), x.data(), r.data(), n, 0.01f);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) {
      if (exact) ok = ok && std::memcmp(&y[i], &r[i], sizeof(float)) == 0;
      else if (!std::isfinite(r[i])) ok = ok && (std::isnan(r[i]) ? std::isnan(y[i]) : y[i] == r[i]);
      else ok = ok && std::fabs(static_cast<double>(y[i]) - r[i]) <= tol * std::max(1.0, std::fabs(double(r[i])));
    }
    if (!ok) {
      std::printf("  unary op %d differs from the reference\n", op);
      ++bad;
    }
  }
  return bad;
}
#endif

}  // namespace

#if defined(ISA_CHECK_AVX512)
// Softmax on AVX-512's kernels against the portable kernel, within its own error bound: rows (16+
// long: whole vectors, tails of 1-15, rows of 8 MiB and more streamed with partial lines at their
// ends), columns ([outer, dim, inner]: 1 to 300 rows, inner not a multiple of 16) and short rows
// (under 16 long, transposed into columns); some maxima past the scaled exp's range; -inf. Returns
// the number of (shape, log) cases that differ.
int softmax_errors(const Kernels<float>& k) {
  int bad = 0;
  const int64_t shapes[][3] = {{3, 16, 1}, {5, 37, 1}, {4, 1000, 1}, {3, 1003, 1}, {2100, 1000, 1}, {2, 4, 100},
                               {3, 1, 37}, {2, 9, 203}, {1, 40, 70}, {2, 300, 33}, {300, 4, 1}, {77, 15, 1}, {64, 2, 1}};
  for (const auto& sh : shapes)
    for (bool log : {false, true}) {
      const int64_t outer = sh[0], dim = sh[1], inner = sh[2], n = outer * dim * inner;
      std::vector<float> x = randn(n), y(static_cast<size_t>(n), -777.0f), ref(static_cast<size_t>(n));
      for (float& v : x) v *= 5.0f;
      x[1] = -INFINITY;
      for (int64_t i = dim; i < std::min(n, 2 * dim); ++i) x[i] += 2000.0f;  // past the scaled exp's range
      softmax_ref<float>(x.data(), ref.data(), outer, dim, inner, log);
      k.softmax(x.data(), y.data(), outer, dim, inner, log);
      for (int64_t i = 0; i < n; ++i) {
        const double r = ref[i], d = std::fabs(static_cast<double>(y[i]) - r);
        const double bound = log ? 2e-5 * std::max(1.0, std::fabs(r)) : 2e-5 * r + 1e-37;
        const bool same_special = (std::isinf(r) && y[i] == ref[i]) || (std::isnan(r) && std::isnan(y[i]));
        if (!(d <= bound) && !same_special) {
          std::printf("  softmax %lldx%lldx%lld log=%d differs at %lld: %.9g vs %.9g\n", (long long)outer,
                      (long long)dim, (long long)inner, log, (long long)i, static_cast<double>(y[i]), r);
          ++bad;
          break;
        }
      }
    }
  return bad;
}
#endif

int main(int argc, char** argv) {
  const double tol = argc > 1 ? std::atof(argv[1]) : 1e-5;
  std::string isa;
  const Kernels<float>* k = nullptr;
  try {
    k = &table_under_test(&isa);
  } catch (const std::exception& e) {
    std::printf("dispatch: %s\n", e.what());
    return 1;
  }
  std::printf("isa: %s\n", isa.c_str());
  Stats conv, linear, subpixel;
  for (const char* algo : {"", "gemm"}) {
    if (*algo) setenv("MEDCONV_CONV_ALGO", algo, 1);
    else unsetenv("MEDCONV_CONV_ALGO");
    for (int threads = 1; threads <= 3; ++threads) {
      set_num_threads(threads);
      for (int dims = 1; dims <= 3; ++dims)
        for (int i = 0; i < 12; ++i) conv_case(*k, dims, conv, i == 0 && dims == 2);
      conv_fixed_cases(*k, conv);
    }
  }
  unsetenv("MEDCONV_CONV_ALGO");
  if (!k->conv_subpixel) {
    std::printf("subpixel: the table has no conv_subpixel\n");
    return 1;
  }
  for (int threads = 1; threads <= 3; ++threads) {
    set_num_threads(threads);
    for (int dims = 1; dims <= 3; ++dims)
      for (int i = 0; i < 8;) i += subpixel_case(*k, dims, subpixel);
    for (int i = 0; i < 16; ++i) linear_case(*k, pick(1, 40), pick(1, 80), pick(1, 300), pick(0, 1), linear);
    linear_case(*k, 100, 300, 520, true, linear);  // M past a 96-row task, N past NC, K past KC
    linear_case(*k, 1, 1, 1, false, linear);
  }
#if !defined(ISA_CHECK_AVX512)
  const int unary_bad = unary_mismatches(kernels_for<float>(), reference_kernels<float>()) +
                        unary_mismatches(kernels_for<double>(), reference_kernels<double>());
  std::printf("unary: %d ops differ from the reference bits\n", unary_bad);
#else
  const int unary_bad = unary_errors(*k, 1e-6) + softmax_errors(*k);
  std::printf("unary, softmax: %d ops or cases differ from the reference\n", unary_bad);
#endif
  std::printf("conv: %d cases, max rel error %.3g%s\n", conv.cases, conv.max_err,
              conv.nan_mismatch ? ", NaN mismatch" : "");
  std::printf("linear: %d cases, max rel error %.3g%s\n", linear.cases, linear.max_err,
              linear.nan_mismatch ? ", NaN mismatch" : "");
  std::printf("subpixel: %d cases, max rel error %.3g\n", subpixel.cases, subpixel.max_err);
  const bool ok = unary_bad == 0 && conv.max_err <= tol && linear.max_err <= tol && subpixel.max_err <= tol &&
                  !conv.nan_mismatch && !linear.nan_mismatch && !subpixel.nan_mismatch;
  std::printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
