#include "core/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define MCMOE_PAUSE() _mm_pause()
#else
#define MCMOE_PAUSE() ((void)0)
#endif

namespace mcmoe {

namespace {
// About 50-100 us of spinning before a worker sleeps: longer than the gap between two
// matvecs of one token, shorter than a human-visible idle.
constexpr int kSpinIterations = 20000;
}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), errors_(static_cast<size_t>(n_threads_)) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      MCMOE_PAUSE();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      sleepers_.fetch_sub(1);
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load()) return;
    try {
      (*job_)(index);
    } catch (...) {  // an exception must not end the process: run() rethrows it
      errors_[index] = std::current_exception();
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  {
    // The lock orders the generation bump against a worker that is about to sleep.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  if (sleepers_.load() > 0) wake_.notify_all();
  // The workers still use fn: a throw on this thread waits for them before it leaves.
  try {
    fn(0);
  } catch (...) {
    errors_[0] = std::current_exception();
  }
  while (pending_.load(std::memory_order_acquire) != 0) MCMOE_PAUSE();
  for (std::exception_ptr& e : errors_) {
    if (!e) continue;
    const std::exception_ptr first = e;
    for (std::exception_ptr& rest : errors_) rest = nullptr;
    std::rethrow_exception(first);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t blocks = (n + grain - 1) / grain;
  const int64_t threads = std::min<int64_t>(n_threads_, blocks);
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  run([&](int t) {
    if (t >= threads) return;
    const int64_t b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
    const int64_t begin = b0 * grain, end = std::min(n, b1 * grain);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace mcmoe
