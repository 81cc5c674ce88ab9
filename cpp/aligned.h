// A per-thread scratch buffer, 64-byte aligned, grown on demand and reused across calls.
#pragma once
#include <cstdint>
#include <cstdlib>

namespace medconv {

template <class T>
T* thread_scratch(int64_t count, int slot = 0) {
  struct Buf {
    void* ptr = nullptr;
    int64_t bytes = 0;
    ~Buf() { std::free(ptr); }
  };
  thread_local Buf bufs[4];
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

}  // namespace medconv
