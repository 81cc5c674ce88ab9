// A per-thread scratch buffer, 64-byte aligned, grown on demand and reused across calls.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace medconv {

// Slots (per element type: float and double buffers are separate): 0 GEMM work blocks (conv_gemm.h,
// conv_subpixel.h, winograd); 1-2 Winograd tiles (1 also conv_subpixel.h's output blocks; both the
// resampling gradient's rows); 2-5 the row-blocked conv's tap offsets, tap rows, padded rows and
// spare rows; 3 Winograd filters, softmax's rows and transposed short rows, the adaptive pool's
// float64 row, the pointwise conv's sums, pad's output chunks; 4 the weight-gradient GEMM's gathered
// rows; 5 the 1D tiles' padded rows and the W-strided kernel's phase rows; the Winograd weight
// gradient's transformed tiles (1), packed A (2) and GEMM work block (3).
// A kernel must not hold a slot's buffer across a call to another kernel that uses the same slot.
template <class T>
T* thread_scratch(int64_t count, int slot = 0) {
  struct Buf {
    void* ptr = nullptr;
    int64_t bytes = 0;
    ~Buf() { std::free(ptr); }
  };
  thread_local Buf bufs[6];
  Buf& b = bufs[slot];
  const int64_t need = ((count * static_cast<int64_t>(sizeof(T)) + 63) / 64) * 64;
  if (need > b.bytes) {
    std::free(b.ptr);
    b.ptr = std::aligned_alloc(64, static_cast<size_t>(need));
    b.bytes = need;
  }
  return static_cast<T*>(b.ptr);
}

// A per-thread run of at least `count` zeros, 64-byte aligned; callers never write to it.
inline const float* thread_zeros(int64_t count) {
  struct Buf {
    float* ptr = nullptr;
    int64_t count = 0;
    ~Buf() { std::free(ptr); }
  };
  thread_local Buf buf;
  if (count > buf.count) {
    std::free(buf.ptr);
    const int64_t n = (count + 15) / 16 * 16;
    buf.ptr = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float)));
    for (int64_t i = 0; i < n; ++i) buf.ptr[i] = 0.0f;
    buf.count = n;
  }
  return buf.ptr;
}

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};

// A 64-byte aligned buffer of n floats, freed with the returned owner.
inline std::unique_ptr<float, FreeDeleter> aligned_floats(int64_t n) {
  const size_t bytes = static_cast<size_t>((std::max<int64_t>(n, 1) * 4 + 63) / 64 * 64);
  return std::unique_ptr<float, FreeDeleter>(static_cast<float*>(std::aligned_alloc(64, bytes)));
}

}  // namespace medconv
