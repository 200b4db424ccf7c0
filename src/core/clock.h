#pragma once
// Wall-clock seconds for reports and benchmarks: one definition instead of the chrono
// expression at every timing site.
#include <chrono>

namespace mcmoe {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace mcmoe
