// Streaming (non-temporal) stores, AVX2, for outputs of at least kStreamStoreBytes (memory.h):
// include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "aligned.h"
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

// Calls row(r, out) for the rows [begin, end) of a [rows, len] output y. out is y's row r itself;
// or, when `stream`, a row of a per-thread staging batch in L1 that is then streamed to y (a batch
// of rows is contiguous in y, so only its two ends get plain stores). The caller calls
// _mm_sfence() at the end of its parallel task, before another thread reads y.
template <class T, class Row>
void write_rows(T* y, int64_t len, int64_t begin, int64_t end, bool stream, Row&& row) {
  if (!stream) {
    for (int64_t r = begin; r < end; ++r) row(r, y + r * len);
    return;
  }
  const int64_t batch = std::max<int64_t>(1, (int64_t{16} << 10) / std::max<int64_t>(1, len * int64_t(sizeof(T))));
  T* stage = thread_scratch<T>(batch * len, 4);
  for (int64_t r0 = begin; r0 < end; r0 += batch) {
    const int64_t n = std::min(batch, end - r0);
    for (int64_t i = 0; i < n; ++i) row(r0 + i, stage + i * len);
    stream_copy(y + r0 * len, stage, n * len * int64_t(sizeof(T)));
  }
}

}  // namespace avx2
}  // namespace medconv
