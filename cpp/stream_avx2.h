// Streaming (non-temporal) stores, AVX2, for outputs of at least kStreamStoreBytes (memory.h):
// include only from *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdlib>

#include "memory.h"

namespace medconv {
namespace avx2 {

// dst[0, bytes) = src[0, bytes): the 32-byte-aligned part of dst with streaming stores, and so the
// 16-byte-aligned pieces at its ends where dst is 16 bytes off (numpy's large arrays: plain stores
// there share their lines with the streaming ones of the neighbouring copies, which made staged conv
// rows 1.3x slower); the at most 15 bytes left at each end with plain stores.
inline void stream_copy(void* dst, const void* src, int64_t bytes) {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  auto stream16 = [&](int64_t at) {
    _mm_stream_ps(reinterpret_cast<float*>(d + at), _mm_loadu_ps(reinterpret_cast<const float*>(s + at)));
  };
  int64_t i = std::min<int64_t>(bytes, (32 - (reinterpret_cast<uintptr_t>(d) & 31)) & 31);
  if (i == 16) stream16(0);
  else std::memcpy(d, s, static_cast<size_t>(i));
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  if (i + 16 <= bytes && (reinterpret_cast<uintptr_t>(d + i) & 15) == 0) stream16(i), i += 16;
  std::memcpy(d + i, s + i, static_cast<size_t>(bytes - i));
}

// Consecutive 8-float vectors streamed to one contiguous run of y, over any number of calls: as
// they are where y is 32-byte aligned; where it is 16 bytes off (numpy's own large arrays start 16
// bytes past a page), each aligned 32 bytes from the high half of one vector and the low half of the
// next, only the run's first and last 16 bytes with plain stores (a run per softmax row, so each
// row's ends sharing a line between plain and streaming stores, ran 1.4x slower); plain stores at
// other alignments. finish() ends the run.
class VectorStream {
 public:
  explicit VectorStream(float* y)
      : next_(y), misalign_(reinterpret_cast<uintptr_t>(y) & 31) {}
  void put(__m256 v) {
    if (misalign_ == 0) {
      _mm256_stream_ps(next_, v);
    } else if (misalign_ == 16) {
      if (pending_) _mm256_stream_ps(next_ - 4, _mm256_permute2f128_ps(prev_, v, 0x21));
      else _mm_storeu_ps(next_, _mm256_castps256_ps128(v));
      prev_ = v;
      pending_ = true;
    } else {
      _mm256_storeu_ps(next_, v);
    }
    next_ += 8;
  }
  void finish() {
    if (pending_) _mm_storeu_ps(next_ - 4, _mm256_extractf128_ps(prev_, 1));
    pending_ = false;
  }

 private:
  float* next_;
  uintptr_t misalign_;
  __m256 prev_ = _mm256_setzero_ps();
  bool pending_ = false;
};

// y[8v, 8v + 8) = vec(v) for v < count, in bursts of 8 vectors computed first and stored after:
// eight independent chains for the compiler to interleave (act_avx2.cpp's flags), and, streamed
// (kStream: as one VectorStream run), each line's stores following each other (a slow vec between
// them, as sigmoid's, leaves lines half-written in the write-combining buffers: 2x slower than
// plain stores).
template <bool kStream, class Vec>
inline void write_vectors(float* y, int64_t count, Vec vec) {
  constexpr int kBurst = 8;
  VectorStream run(y);
  auto put = [&](int64_t v, __m256 b) {
    if (kStream) run.put(b);
    else _mm256_storeu_ps(y + 8 * v, b);
  };
  int64_t v = 0;
  for (; v + kBurst <= count; v += kBurst) {
    __m256 b[kBurst];
    for (int k = 0; k < kBurst; ++k) b[k] = vec(v + k);
    for (int k = 0; k < kBurst; ++k) put(v + k, b[k]);
  }
  for (; v < count; ++v) put(v, vec(v));
  if (kStream) run.finish();
}

}  // namespace avx2
}  // namespace medconv
