#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#include <unistd.h>

namespace medconv {
namespace {

int default_threads() {
  if (const char* env = std::getenv("MEDCONV_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// A short wait in a spin loop.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins up to kSpinTime for pred() before the caller falls back to sleeping: a worker that has
// just finished a job picks up the next one (a Python loop of small ops) without a futex wake-up,
// which costs tens of microseconds on a VM; the caller likewise sees the last chunk finish.
constexpr std::chrono::microseconds kSpinTime{60};

template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (int i = 1;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) return pred();
  }
}

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Runs the job on the workers and the caller; returns when every chunk is done. Workers still
  // asleep when the caller has run every chunk itself are not waited for (waking one costs tens of
  // microseconds on a VM: a global pool of 16x512x8x8 at 2 threads took 2x its 1-thread time).
  void run(int64_t n_chunks, const std::function<void(int64_t)>& chunk) {
    uint64_t epoch;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &chunk;
      done_.store(0, std::memory_order_relaxed);
      epoch = (epoch_of(claims_.load()) + 1) & kEpochMask;
      claims_.store(epoch << kEpochShift | static_cast<uint64_t>(n_chunks) << kLimitShift, std::memory_order_release);
    }
    wake_.notify_all();
    work(epoch);
    auto all_done = [&] { return done_.load(std::memory_order_acquire) == n_chunks; };
    if (!spin_until(all_done)) {
      std::unique_lock<std::mutex> lock(mutex_);
      finished_.wait(lock, all_done);
    }
  }

 private:
  // claims_ packs (epoch, chunk count, next chunk to claim): one compare-exchange claims a chunk of
  // the current job only, so a worker that wakes late never runs a finished job's chunk.
  static constexpr int kEpochShift = 40, kLimitShift = 20;
  static constexpr uint64_t kEpochMask = (uint64_t{1} << 24) - 1, kIndexMask = (uint64_t{1} << 20) - 1;
  static uint64_t epoch_of(uint64_t c) { return c >> kEpochShift; }

  // Claims and runs chunks of job `epoch` until none is left or a newer job has started.
  void work(uint64_t epoch) {
    uint64_t c = claims_.load(std::memory_order_acquire);
    for (;;) {
      const uint64_t limit = (c >> kLimitShift) & kIndexMask, next = c & kIndexMask;
      if (epoch_of(c) != epoch || next >= limit) return;
      if (!claims_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      (*job_)(static_cast<int64_t>(next));
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<int64_t>(limit)) {
        std::lock_guard<std::mutex> lock(mutex_);  // a caller about to sleep has checked done_ under it
        finished_.notify_all();
      }
      c = claims_.load(std::memory_order_acquire);
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    auto has_work = [&] {
      return stopping_.load(std::memory_order_acquire) || epoch_of(claims_.load(std::memory_order_acquire)) != seen;
    };
    for (;;) {
      if (!spin_until(has_work)) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, has_work);
      }
      if (stopping_.load()) return;
      seen = epoch_of(claims_.load(std::memory_order_acquire));
      work(seen);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void(int64_t)>* job_ = nullptr;
  std::atomic<uint64_t> claims_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<bool> stopping_{false};
};

std::atomic<int> g_threads{0};
std::mutex g_pool_owner;  // held by the one caller that uses the pool
Pool* g_pool = nullptr;
pid_t g_pool_pid = 0;

Pool& pool_for(int threads) {
  // After fork() the workers are gone: build a fresh pool (the old one is abandoned, not joined).
  if (g_pool != nullptr && (g_pool_pid != getpid() || g_pool->workers() != threads - 1)) {
    if (g_pool_pid == getpid()) delete g_pool;
    g_pool = nullptr;
  }
  if (g_pool == nullptr) {
    g_pool = new Pool(threads - 1);
    g_pool_pid = getpid();
  }
  return *g_pool;
}

}  // namespace

int get_num_threads() {
  int n = g_threads.load();
  if (n == 0) {
    n = default_threads();
    g_threads.store(n);
  }
  return n;
}

void set_num_threads(int n) { g_threads.store(n < 1 ? 1 : n); }

namespace {
thread_local bool t_serial = false;
}  // namespace

SerialScope::SerialScope(bool serial) : before_(t_serial) { t_serial = t_serial || serial; }
SerialScope::~SerialScope() { t_serial = before_; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int threads = t_serial ? 1 : get_num_threads();
  int64_t max_chunks = (n + grain - 1) / grain;
  if (threads <= 1 || max_chunks <= 1) {
    body(0, n);
    return;
  }
  std::unique_lock<std::mutex> owner(g_pool_owner, std::try_to_lock);
  if (!owner.owns_lock()) {  // another thread is using the pool: do not oversubscribe
    body(0, n);
    return;
  }
  int64_t n_chunks = std::min<int64_t>({max_chunks, static_cast<int64_t>(threads) * 4, int64_t{1} << 16});
  int64_t per = (n + n_chunks - 1) / n_chunks;
  n_chunks = (n + per - 1) / per;
  Pool& pool = pool_for(threads);
  pool.run(n_chunks, [&](int64_t c) {
    int64_t b = c * per;
    body(b, std::min(n, b + per));
  });
}

}  // namespace medconv
