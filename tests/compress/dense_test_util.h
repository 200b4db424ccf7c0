#pragma once
// Random f32 matrices for the tests of the offline pipelines' dense math.
#include <cstdint>
#include <random>

#include "compress/dense.h"

namespace mcmoe::test {

// Standard normal entries, reproducible from the seed.
inline compress::DenseMatrix random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  compress::DenseMatrix m{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols))};
  for (float& x : m.data) x = nd(rng);
  return m;
}

}  // namespace mcmoe::test
