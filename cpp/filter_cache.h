// Transformed filters kept between calls on the same weights. Inference calls each layer again and
// again with unchanged weights, and a Winograd call transforms its filters every time (4x the
// weights, written and read back): for deep layers on small images that is a third of the call.
//
// An entry holds a copy of the weights it was made from, and a call takes it only when its weights
// are bitwise that copy (compared in full, every call), so weights changed in place are always seen.
// Weights are copied from their second call on (one-off calls cost nothing), and weights that
// change between calls (training) stop being copied after two misses in a row, for the next 16
// calls of that layer; a refill reuses the entry's memory. Entries live within a byte budget
// (weights copy + filters; MEDCONV_FILTER_CACHE_BYTES, default 256 MiB, 0 turns the cache off),
// least recently used out first. Internal callers with temporary weights turn it off
// (FilterCacheOff).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace medconv {

struct FilterEntry;  // filter_cache.cpp

// Transformed filters of one call: `data` to read (cached or just made); `fill` says whether the
// caller must write them first (then publish()).
class FilterLease {
 public:
  float* data = nullptr;
  bool fill = false;
  void publish();  // the filters are written: later calls may take them
  ~FilterLease();
  FilterLease() = default;
  FilterLease(FilterLease&&) = default;
  FilterLease& operator=(FilterLease&&) = default;

 private:
  friend FilterLease lease_filters(std::vector<int64_t>, const float*, int64_t, int64_t);
  std::shared_ptr<FilterEntry> entry_;
};

// The filters made from weights w (w_count floats) under `key` (what else they depend on: the
// weights' address, shapes, the GEMM's layout): a cached entry's (fill false), a new entry to fill
// (fill true), or, when the cache is off, full or skipping these weights, data null (the caller
// uses memory of its own).
FilterLease lease_filters(std::vector<int64_t> key, const float* w, int64_t w_count, int64_t filter_floats);

// While one lives, this thread's calls neither take nor make entries: weights made for one call
// (flipped for a gradient) would only churn the cache.
class FilterCacheOff {
 public:
  FilterCacheOff();
  ~FilterCacheOff();
  FilterCacheOff(const FilterCacheOff&) = delete;
  FilterCacheOff& operator=(const FilterCacheOff&) = delete;

 private:
  bool before_;
};

void set_filter_cache_limit(int64_t bytes);
int64_t filter_cache_limit();
int64_t filter_cache_bytes();  // held now
void release_filter_cache();

}  // namespace medconv
