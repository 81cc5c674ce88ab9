#include "memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>

namespace medconv {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;      // size -> block
  std::unordered_map<void*, size_t> live_sizes;  // block -> size, for blocks handed out
  size_t free_bytes = 0;
  size_t limit = default_limit();

  static size_t default_limit() {
    if (const char* env = std::getenv("MEDCONV_CACHE_BYTES")) return static_cast<size_t>(std::strtoull(env, nullptr, 10));
    return size_t(1) << 30;
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: arrays may outlive interpreter teardown
  return *c;
}

void* map_block(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE);
#endif
  return p;
}

void trim_locked(Cache& c, size_t keep) {
  while (c.free_bytes > keep && !c.free_blocks.empty()) {
    auto largest = std::prev(c.free_blocks.end());
    munmap(largest->second, largest->first);
    c.free_bytes -= largest->first;
    c.free_blocks.erase(largest);
  }
}

}  // namespace

void* cached_alloc(size_t bytes) {
  const size_t size = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free_blocks.lower_bound(size);  // the smallest block that fits, if not much larger
    if (it != c.free_blocks.end() && it->first <= size + size / 4) {
      void* p = it->second;
      c.live_sizes[p] = it->first;
      c.free_bytes -= it->first;
      c.free_blocks.erase(it);
      return p;
    }
  }
  void* p = map_block(size);
  std::lock_guard<std::mutex> lock(c.mutex);
  c.live_sizes[p] = size;
  return p;
}

void cached_free(void* ptr) {
  if (ptr == nullptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.live_sizes.find(ptr);
  if (it == c.live_sizes.end()) return;
  const size_t size = it->second;
  c.live_sizes.erase(it);
  if (size > c.limit) {
    munmap(ptr, size);
    return;
  }
  c.free_blocks.emplace(size, ptr);
  c.free_bytes += size;
  trim_locked(c, c.limit);
}

void set_cache_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = bytes;
  trim_locked(c, c.limit);
}

size_t cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.limit;
}

size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.free_bytes;
}

void release_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  trim_locked(c, 0);
}

}  // namespace medconv
