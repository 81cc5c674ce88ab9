// Runs medconv's CUDA kernels (cuda/*.cu) on the CPU, for tests on machines without a GPU.
//
// Force-included ahead of a .cu file compiled as C++ (g++ -include tests/cuda_emu.h -x c++):
// every CUDA thread of a block is an OS thread, blocks run one after another (so a __shared__
// array can be a function-local static), __syncthreads() is a barrier over the block's threads.
// The host sets the launch shape with emu_configure() and then calls the kernel's extern "C"
// name as a plain function. Real concurrency inside a block means a missing __syncthreads can
// show up here as a wrong result; warp-synchronous tricks are not emulated (the kernels use none).
#pragma once
#include <math.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};

namespace emu {

inline dim3 grid, block;
inline thread_local dim3 tidx, bidx;

class Barrier {
 public:
  void reset(unsigned n) { n_ = n; waiting_ = 0; generation_ = 0; }
  void wait() {
    std::unique_lock<std::mutex> lock(m_);
    const unsigned gen = generation_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return gen != generation_; })) {
      std::fprintf(stderr, "cuda_emu: __syncthreads deadlock (a thread skipped a barrier)\n");
      std::abort();
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  unsigned n_ = 1, waiting_ = 0, generation_ = 0;
};

inline Barrier barrier;

inline void launch(const std::function<void()>& body) {
  const unsigned nthreads = block.x * block.y * block.z;
  barrier.reset(nthreads);
  std::vector<std::thread> threads;
  threads.reserve(nthreads);
  for (unsigned t = 0; t < nthreads; ++t) {
    threads.emplace_back([&, t] {
      tidx = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
      for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
          for (unsigned bx = 0; bx < grid.x; ++bx) {
            bidx = dim3{bx, by, bz};
            body();
            barrier.wait();  // the block's shared memory is reused by the next block
          }
    });
  }
  for (auto& th : threads) th.join();
}

inline void syncthreads() { barrier.wait(); }

}  // namespace emu

extern "C" void emu_configure(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz) {
  emu::grid = dim3{gx, gy, gz};
  emu::block = dim3{bx, by, bz};
}

#define threadIdx (emu::tidx)
#define blockIdx (emu::bidx)
#define blockDim (emu::block)
#define gridDim (emu::grid)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() emu::syncthreads()

inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __int_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline double __longlong_as_double(long long v) { double d; std::memcpy(&d, &v, 8); return d; }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __ddiv_rn(double a, double b) { volatile double r = a / b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __double2float_rn(double a) { return static_cast<float>(a); }

#define MC_EXPORT(name, params, ...) \
  extern "C" void name params { emu::launch([&] { __VA_ARGS__; }); }
#define MC_EXPORT_BOUNDED(threads, min_blocks, name, params, ...) MC_EXPORT(name, params, __VA_ARGS__)
