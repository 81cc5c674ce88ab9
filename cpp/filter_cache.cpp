#include "filter_cache.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <new>
#include <mutex>

#include "parallel.h"

namespace medconv {

struct FilterEntry {
  std::vector<float> weights;  // what the filters were made from
  float* filters = nullptr;    // null once dropped (the record then only counts the cooldown)
  int64_t filter_floats = 0;
  bool ready = false;          // published: the filters are written
  int misses = 0;              // calls in a row whose weights differed from the copy
  int cooldown = 0;            // calls left that do not cache these weights
  uint64_t last_use = 0;
  int64_t bytes() const { return filters ? static_cast<int64_t>(weights.size() + filter_floats) * 4 : 0; }
  ~FilterEntry() { std::free(filters); }
};

namespace {

constexpr int kMissesBeforeCooldown = 2, kCooldownCalls = 16;
thread_local bool t_cache_off = false;

struct Cache {
  std::mutex mutex;
  std::map<std::vector<int64_t>, std::shared_ptr<FilterEntry>> entries;
  int64_t limit = 0, held = 0;
  uint64_t clock = 0;
  Cache() {
    const char* env = std::getenv("MEDCONV_FILTER_CACHE_BYTES");
    limit = env ? std::max<long long>(0, std::atoll(env)) : int64_t{256} << 20;
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: leases may outlive static destruction order
  return *c;
}

// Replaces the entry at `it` with a record without data that keeps its miss count and cooldown (the
// filters are freed when the last lease of the old entry ends); the cache's lock is held.
void drop_locked(Cache& c, std::map<std::vector<int64_t>, std::shared_ptr<FilterEntry>>::iterator it) {
  c.held -= it->second->bytes();
  auto record = std::make_shared<FilterEntry>();
  record->misses = it->second->misses;
  record->cooldown = it->second->cooldown;
  it->second = std::move(record);
}

// Drops the least recently used entries with data until `need` more bytes fit the limit.
void make_room_locked(Cache& c, int64_t need) {
  while (c.held + need > c.limit) {
    auto oldest = c.entries.end();
    for (auto it = c.entries.begin(); it != c.entries.end(); ++it)
      if (it->second->filters && (oldest == c.entries.end() || it->second->last_use < oldest->second->last_use))
        oldest = it;
    if (oldest == c.entries.end()) return;
    drop_locked(c, oldest);
  }
  if (c.entries.size() > 4096) {  // records of dropped entries: bounded
    for (auto it = c.entries.begin(); it != c.entries.end();)
      it = it->second->filters ? std::next(it) : c.entries.erase(it);
  }
}

// a[0, n) == b[0, n) bitwise, in parallel chunks of 64 KiB.
bool same_bits(const float* a, const float* b, int64_t n) {
  constexpr int64_t kChunk = 16384;
  std::atomic<bool> differ(false);
  parallel_for((n + kChunk - 1) / kChunk, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end && !differ.load(std::memory_order_relaxed); ++i) {
      const int64_t lo = i * kChunk, len = std::min(kChunk, n - lo);
      if (std::memcmp(a + lo, b + lo, static_cast<size_t>(len) * sizeof(float)) != 0) differ.store(true);
    }
  });
  return !differ.load();
}

}  // namespace

void FilterLease::publish() {
  if (!entry_ || !fill) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  entry_->ready = entry_->filters != nullptr;
  fill = false;
}

FilterLease::~FilterLease() = default;

FilterLease lease_filters(std::vector<int64_t> key, const float* w, int64_t w_count, int64_t filter_floats) {
  Cache& c = cache();
  FilterLease lease;
  if (t_cache_off) return lease;
  std::shared_ptr<FilterEntry> e;
  bool ready = false;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.limit == 0) return lease;
    auto it = c.entries.find(key);
    if (it != c.entries.end()) e = it->second, ready = e->ready;
  }
  // A ready entry's weights and filters change only when no one else holds it (below): compared
  // unlocked, kept alive by e.
  const bool hit = ready && e->filter_floats == filter_floats && static_cast<int64_t>(e->weights.size()) == w_count &&
                   same_bits(e->weights.data(), w, w_count);
  std::lock_guard<std::mutex> lock(c.mutex);
  if (hit) {
    e->last_use = ++c.clock;
    e->misses = 0;
    lease.entry_ = e;
    lease.data = e->filters;
    return lease;
  }
  e.reset();
  auto it = c.entries.find(key);
  if (it == c.entries.end()) {  // first seen: only a record (weights passed once are not copied)
    make_room_locked(c, 0);
    c.entries.emplace(std::move(key), std::make_shared<FilterEntry>());
    return lease;
  }
  FilterEntry& cur = *it->second;
  if (!cur.ready && cur.filters && it->second.use_count() > 1) return lease;  // another call is filling it
  if (cur.cooldown > 0) {
    --cur.cooldown;
    return lease;
  }
  const int misses = cur.ready ? cur.misses + 1 : 0;  // (not ready: a record, or a fill left unpublished)
  if (misses >= kMissesBeforeCooldown) {  // weights that keep changing: stop copying them
    drop_locked(c, it);
    it->second->misses = 0;
    it->second->cooldown = kCooldownCalls;
    return lease;
  }
  const int64_t need = (w_count + filter_floats) * static_cast<int64_t>(sizeof(float));
  if (cur.filters && it->second.use_count() == 1 && cur.filter_floats == filter_floats &&
      static_cast<int64_t>(cur.weights.size()) == w_count) {  // refill in place: no fresh pages to fault in
    std::memcpy(cur.weights.data(), w, static_cast<size_t>(w_count) * sizeof(float));
    cur.ready = false;
    cur.misses = misses;
    cur.last_use = ++c.clock;
    lease.entry_ = it->second;
    lease.data = cur.filters;
    lease.fill = true;
    return lease;
  }
  drop_locked(c, it);
  if (need > c.limit) return lease;
  make_room_locked(c, need);
  if (c.held + need > c.limit) return lease;
  auto fresh = std::make_shared<FilterEntry>();
  const size_t filter_bytes = (static_cast<size_t>(filter_floats) * sizeof(float) + 63) / 64 * 64;
  fresh->filters = static_cast<float*>(std::aligned_alloc(64, filter_bytes));
  if (!fresh->filters) return lease;
  fresh->filter_floats = filter_floats;
  try {
    fresh->weights.assign(w, w + w_count);
  } catch (const std::bad_alloc&) {
    return lease;  // no room for the copy: the call goes on without the cache
  }
  fresh->misses = misses;
  fresh->last_use = ++c.clock;
  c.held += fresh->bytes();
  it->second = fresh;
  lease.entry_ = fresh;
  lease.data = fresh->filters;
  lease.fill = true;
  return lease;
}

FilterCacheOff::FilterCacheOff() : before_(t_cache_off) { t_cache_off = true; }
FilterCacheOff::~FilterCacheOff() { t_cache_off = before_; }

void set_filter_cache_limit(int64_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = std::max<int64_t>(0, bytes);
  make_room_locked(c, 0);
}

int64_t filter_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.limit;
}

int64_t filter_cache_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.held;
}

void release_filter_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.entries.clear();  // entries still leased are freed when their lease ends
  c.held = 0;
}

}  // namespace medconv
