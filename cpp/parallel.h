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

}  // namespace medconv
