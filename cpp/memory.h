// Output buffers for large results, cached across calls: a fresh 64 MB numpy output costs more in
// page faults (4 KiB each) than most kernels take to fill it. Blocks are 2 MiB aligned and advised
// as huge pages; a freed block goes back to the cache and the next result of a similar size reuses
// its already-mapped pages.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace medconv {

constexpr size_t kCachedMinBytes = size_t(1) << 20;  // smaller requests go to numpy's allocator

// Outputs at least this large are written with streaming (non-temporal) stores where a kernel can:
// they would not stay in the caches anyway, and skipping the read for ownership of each line saves
// a third of the memory traffic of a read-once, write-once kernel.
constexpr int64_t kStreamStoreBytes = int64_t{8} << 20;

void* cached_alloc(size_t bytes);        // never null; throws std::bad_alloc
void cached_free(void* ptr);             // returns the block to the cache (or unmaps it)
void set_cache_limit(size_t bytes);      // the most bytes kept mapped while unused
size_t cache_limit();
size_t cached_bytes();                   // unused bytes held now
void release_cache();                    // unmaps every unused block

namespace {  // internal linkage: each ISA's file keeps its own copy (see gemm_common.h)

// A kernel's buffer of n T for one call: from the cache when it is at least kCachedMinBytes (no
// page faults on every call), else from the heap (64-byte aligned).
template <class T>
std::unique_ptr<T, void (*)(T*)> call_buffer(int64_t n) {
  const size_t bytes = (sizeof(T) * static_cast<size_t>(n > 0 ? n : 1) + 63) / 64 * 64;
  if (bytes >= kCachedMinBytes) return {static_cast<T*>(cached_alloc(bytes)), [](T* p) { cached_free(p); }};
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return {static_cast<T*>(p), [](T* q) { std::free(q); }};
}

}  // namespace

}  // namespace medconv
