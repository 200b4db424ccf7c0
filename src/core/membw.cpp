#include "core/membw.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/clock.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace mcmoe {

namespace {
// Summing 64-bit words with four accumulators: enough loads in flight to saturate memory
// without SIMD, so the figure does not depend on the kernel ISA.
__attribute__((noinline)) uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  return a ^ b ^ c ^ d;
}
}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
  const size_t words = bytes / 8;
  std::unique_ptr<uint64_t[]> buf(new uint64_t[words]);
  pool.parallel_for(static_cast<int64_t>(words), 4096, [&](int64_t b, int64_t e) {
    std::memset(buf.get() + b, 1, static_cast<size_t>(e - b) * 8);
  });
  double best = 0;
  std::vector<uint64_t> sink(static_cast<size_t>(pool.size()));
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int t) {
      const size_t b = words * t / pool.size(), e = words * (t + 1) / pool.size();
      sink[t] += sum_words(buf.get() + b, e - b);
    });
    const double s = seconds_since(t0);
    best = std::max(best, static_cast<double>(words * 8) / s);
  }
  volatile uint64_t keep = sink[0];
  (void)keep;
  return best;
}

}  // namespace mcmoe
