// QuantSpec::search: the least-squares clip search never does worse than the min/max grid
// on its own (|w|-weighted) objective, keeps f16-exact grids, and GPTQ with an identity
// Hessian still equals round-to-nearest with the same grids.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "compress/quantizers.h"
#include "core/fp16.h"

namespace mcmoe::compress {
namespace {

double weighted_error(const std::vector<float>& w, const GroupedQuant& q) {
  double e = 0;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const double d = w[r * q.cols + c] - q.value(r, c);
      e += std::fabs(w[r * q.cols + c]) * d * d;
    }
  }
  return e;
}

std::vector<float> heavy_tailed(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(3.0f);  // outliers, as real weights have
  std::vector<float> w(static_cast<size_t>(n));
  for (float& x : w) x = 0.02f * t(rng);
  return w;
}

TEST(GridSearch, NeverWorseThanMinMaxAndF16Exact) {
  const int64_t rows = 64, cols = 256;
  const std::vector<float> w = heavy_tailed(rows * cols, 5);
  for (int bits : {2, 3, 4}) {
    for (int64_t group : {32, 128}) {
      const GroupedQuant plain = quantize_rtn(w.data(), rows, cols, QuantSpec{.bits = bits, .group = group});
      const GroupedQuant searched =
          quantize_rtn(w.data(), rows, cols, QuantSpec{.bits = bits, .group = group, .search = true});
      EXPECT_LT(weighted_error(w, searched), weighted_error(w, plain)) << bits << " bits, group " << group;
      for (size_t i = 0; i < searched.scale.size(); ++i) {
        EXPECT_EQ(fp16_to_f32(f32_to_fp16(searched.scale[i])), searched.scale[i]);
        EXPECT_EQ(fp16_to_f32(f32_to_fp16(searched.min[i])), searched.min[i]);
      }
    }
  }
}

// A group whose only non-zero weight is one value (a one-hot router row) leaves the least-
// squares refit singular; the search must still hand back an f16-exact grid (it used to keep
// the unrounded clip range, which pack_grouped rejected).
TEST(GridSearch, DegenerateGroupStaysF16Exact) {
  const int64_t rows = 2, cols = 128;
  std::vector<float> w(rows * cols, 0.f);
  w[5] = 0.25f;
  w[cols + 7] = -1.f / 3.f;
  for (int bits : {2, 3, 4}) {
    const GroupedQuant q = quantize_rtn(w.data(), rows, cols, QuantSpec{.bits = bits, .group = 128, .search = true});
    for (size_t i = 0; i < q.scale.size(); ++i) {
      EXPECT_EQ(fp16_to_f32(f32_to_fp16(q.scale[i])), q.scale[i]) << bits << " bits";
      EXPECT_EQ(fp16_to_f32(f32_to_fp16(q.min[i])), q.min[i]) << bits << " bits";
    }
  }
}

TEST(GridSearch, GptqWithIdentityHessianEqualsSearchedRtn) {
  const int64_t rows = 16, cols = 256;
  const std::vector<float> w = heavy_tailed(rows * cols, 9);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0;
  const QuantSpec spec{.bits = 2, .group = 128, .search = true};
  const GroupedQuant a = quantize_rtn(w.data(), rows, cols, spec);
  const GroupedQuant b = quantize_gptq(w.data(), rows, cols, h, GptqOptions{.spec = spec});
  EXPECT_EQ(a.q, b.q);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.min, b.min);
}

}  // namespace
}  // namespace mcmoe::compress
