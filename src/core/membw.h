#pragma once
#include "core/thread_pool.h"

namespace mcmoe {

// Measured read bandwidth in bytes/s: the best of a few passes summing a buffer of
// `bytes` (much larger than the caches) split across the pool's threads.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int passes = 4);

}  // namespace mcmoe
