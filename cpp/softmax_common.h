// Scalar pieces of the softmax row kernels shared by softmax_avx2.cpp and softmax_avx512.cpp. Internal
// linkage (anonymous namespace): each file keeps the copy compiled with its own flags.
#pragma once
#include <cmath>

namespace medconv {
namespace {

constexpr float kScaledMaxAbs = 1000.0f;  // rows whose |max| is at most this take exp(x) 2^-k

// Log-softmax's y = ((x - a) - b) - c, each step rounded once (within half an ulp of y: about
// 1.8e-7 max(1, |y|) worst with the sum's own error). Where |m| <= 1000 (the scaled exp), a + b is
// m + log(sum) in float64 split into floats and c = 0; beyond, a = m and b + c = log(sum), as
// m + log(sum) in float64 would lose log(sum) once |m| passes ~1e7 (log_softmax of twenty 3.4e38s
// gave 0, not -log 20). A non-finite sum or m leaves no low part, so the NaN or inf comes through.
struct LogSubtrahends {
  float a, b, c;
};
inline LogSubtrahends log_subtrahends(float m, double log_sum, bool scaled) {
  auto split = [](double v, float& hi, float& lo) {
    hi = static_cast<float>(v);
    lo = std::isfinite(v) ? static_cast<float>(v - hi) : 0.0f;
  };
  LogSubtrahends t{m, 0.0f, 0.0f};
  if (scaled) split(static_cast<double>(m) + log_sum, t.a, t.b);
  else split(log_sum, t.b, t.c);
  return t;
}

}  // namespace
}  // namespace medconv
