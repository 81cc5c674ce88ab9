// Shared helpers for medconv's CUDA kernels (compiled at run time by NVRTC through CuPy, and by
// nvcc in tests/test_cuda_compile.py). No standard headers: NVRTC has none by default.
//
// Conventions of every .cu file:
// - a templated __device__ body per kernel, and `extern "C"` wrappers per dtype made with
//   MC_EXPORT(name_f32, (params with float), body<float>(args)) -- the names are what
//   python/medconv/_cuda.py looks up, and what the compile test checks;
// - element indices are 64-bit (i64); sizes come in as i64, small counts (kernel taps,
//   op codes) as int;
// - no float atomics: each output element is written by exactly one thread, and every sum is
//   taken in a fixed order, so results are the same bits run after run.
#pragma once

typedef long long i64;

// The extern "C" entry point; MC_EXPORT_BOUNDED adds __launch_bounds__(threads, min_blocks) (at most
// 65536 / (threads * min_blocks) registers a thread). (tests/cuda_emu.h defines both first to run the
// kernels on a CPU.)
#ifndef MC_EXPORT
#define MC_EXPORT(name, params, ...) \
  extern "C" __global__ void name params { __VA_ARGS__; }
#define MC_EXPORT_BOUNDED(threads, min_blocks, name, params, ...) \
  extern "C" __global__ void __launch_bounds__(threads, min_blocks) name params { __VA_ARGS__; }
#endif

// A grid-stride loop over [0, n) with a 64-bit index.
#define MC_FOR(i, n) \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

#define MC_THREADS 256  // threads per block of every kernel that uses shared memory

template <class T> __device__ __forceinline__ T mc_min(T a, T b) { return b < a ? b : a; }
template <class T> __device__ __forceinline__ T mc_max(T a, T b) { return a < b ? b : a; }
template <class T> __device__ __forceinline__ bool mc_isnan(T v) { return v != v; }
// max that lets NaN win (torch's max semantics): keeps `a` unless b is larger or NaN
template <class T> __device__ __forceinline__ T mc_nanmax(T a, T b) { return (b > a || b != b) ? b : a; }

template <class T> __device__ __forceinline__ T mc_neg_inf();
template <> __device__ __forceinline__ float mc_neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double mc_neg_inf<double>() {
  return __longlong_as_double(0xfff0000000000000LL);
}

// Overloads of the math functions by precision (float -> the f-suffixed function).
__device__ __forceinline__ float mc_exp(float v) { return expf(v); }
__device__ __forceinline__ double mc_exp(double v) { return exp(v); }
__device__ __forceinline__ float mc_expm1(float v) { return expm1f(v); }
__device__ __forceinline__ double mc_expm1(double v) { return expm1(v); }
__device__ __forceinline__ float mc_log(float v) { return logf(v); }
__device__ __forceinline__ double mc_log(double v) { return log(v); }
__device__ __forceinline__ float mc_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double mc_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float mc_erf(float v) { return erff(v); }
__device__ __forceinline__ double mc_erf(double v) { return erf(v); }
__device__ __forceinline__ float mc_floor(float v) { return floorf(v); }
__device__ __forceinline__ double mc_floor(double v) { return floor(v); }

// Products and sums that are never fused into an FMA, for index arithmetic that must round
// exactly as the CPU reference does (a fused product can move a floor() across an integer).
__device__ __forceinline__ float mc_mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mc_mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float mc_add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double mc_add_rn(double a, double b) { return __dadd_rn(a, b); }

// Integer division rounding toward -infinity (b > 0).
__device__ __forceinline__ i64 mc_floordiv(i64 a, i64 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Sum (or max) of one value per thread over a block of MC_THREADS threads, in a fixed tree order;
// every thread gets the result. `buf` is __shared__ scratch of MC_THREADS elements. All threads
// of the block must call it (it synchronises).
template <class T>
__device__ __forceinline__ T mc_block_sum(T v, T* buf) {
  const int t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
  for (int half = MC_THREADS / 2; half > 0; half >>= 1) {
    if (t < half) buf[t] = buf[t] + buf[t + half];
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads();
  return r;
}

template <class T>
__device__ __forceinline__ T mc_block_nanmax(T v, T* buf) {
  const int t = threadIdx.x;
  buf[t] = v;
  __syncthreads();
  for (int half = MC_THREADS / 2; half > 0; half >>= 1) {
    if (t < half) buf[t] = mc_nanmax(buf[t], buf[t + half]);
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads();
  return r;
}
