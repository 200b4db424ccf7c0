#pragma once
// A fixed pool for data-parallel loops. Decode issues a few hundred short parallel loops per
// token, so workers spin briefly on a generation counter before sleeping: a condition
// variable round trip (~5-10 us) per loop would cost more than the loop itself.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mcmoe {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads includes the calling thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index) once on each of size() threads (the caller is index 0) and
  // returns when all have finished. If any threw, rethrows the exception of the lowest
  // thread index, after every thread has finished.
  void run(const std::function<void(int)>& fn);

  // Splits [0, n) into contiguous chunks, at most one per thread, chunk sizes rounded to
  // multiples of `grain`; fn(begin, end) runs on each non-empty chunk. Chunks ascend with the
  // thread index, so an exception is the one from the lowest chunk that threw, as a serial
  // loop over the chunks would report.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* job_ = nullptr;
  std::vector<std::exception_ptr> errors_;  // per thread index, for the job now running
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
};

}  // namespace mcmoe
