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

}  // namespace medconv
