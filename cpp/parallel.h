// The one threading primitive of medconv: a persistent pool and parallel_for.
#pragma once
#include <cstdint>
#include <functional>

namespace medconv {

int get_num_threads();
void set_num_threads(int n);

// Calls body(begin, end) over disjoint chunks covering [0, n), at least `grain` items each.
// Kernels must make every output element's value independent of the split, so results are
// bitwise the same for any thread count. When the pool is busy with another caller (another
// Python thread), the call runs on the calling thread alone instead of oversubscribing.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

// While one lives (on this thread, nested ones included), parallel_for runs on the calling thread
// alone when `serial`: for calls too small to gain from threads, whose split and wake-ups cost more
// than the work (a 1x4x8x8 conv after an idle spell: 52 us at 2 threads, 11 us at 1).
class SerialScope {
 public:
  explicit SerialScope(bool serial);
  ~SerialScope();
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  bool before_;
};

}  // namespace medconv
