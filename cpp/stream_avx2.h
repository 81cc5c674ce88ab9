// Streaming (non-temporal) stores, AVX2, for outputs of at least kStreamStoreBytes (memory.h):
// include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "memory.h"

namespace medconv {
namespace avx2 {

// dst[0, bytes) = src[0, bytes): the 32-byte-aligned part of dst with streaming stores, the at most
// 31 bytes at each end with plain ones.
inline void stream_copy(void* dst, const void* src, int64_t bytes) {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  const int64_t head = std::min<int64_t>(bytes, (32 - (reinterpret_cast<uintptr_t>(d) & 31)) & 31);
  std::memcpy(d, s, static_cast<size_t>(head));
  int64_t i = head;
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  std::memcpy(d + i, s + i, static_cast<size_t>(bytes - i));
}

}  // namespace avx2
}  // namespace medconv
