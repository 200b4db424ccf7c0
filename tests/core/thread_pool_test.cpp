// core/thread_pool.h: an exception in any thread's share of a job reaches the caller (the
// lowest thread index's, after every thread has finished) instead of ending the process, and
// the pool runs the next job as before.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace mcmoe {
namespace {

TEST(ThreadPool, RethrowsTheLowestThreadsExceptionAfterAllFinish) {
  ThreadPool pool(3);
  std::atomic<int> finished{0};
  try {
    pool.run([&](int t) {
      if (t > 0) throw std::runtime_error("thread " + std::to_string(t));
      finished.fetch_add(1);
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "thread 1");
  }
  EXPECT_EQ(finished.load(), 1);
  // The caller's own throw waits for the workers, which still read the job.
  std::atomic<int> workers_done{0};
  EXPECT_THROW(pool.run([&](int t) {
    if (t == 0) throw std::logic_error("caller");
    for (volatile int i = 0; i < 1000000; ++i) {
    }
    workers_done.fetch_add(1);
  }),
               std::logic_error);
  EXPECT_EQ(workers_done.load(), 2);
  // Errors do not outlive their job.
  std::atomic<int> ran{0};
  pool.run([&](int) { ran.fetch_add(1); });
  EXPECT_EQ(ran.load(), 3);
}

TEST(ThreadPool, ParallelForReportsTheLowestFailingChunk) {
  ThreadPool pool(2);
  const std::string message = [&] {
    try {
      pool.parallel_for(100, 10, [](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          if (r == 20 || r == 70) throw std::runtime_error("row " + std::to_string(r));
      });
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  }();
  EXPECT_EQ(message, "row 20");
}

}  // namespace
}  // namespace mcmoe
