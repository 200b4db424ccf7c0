#pragma once
// Shared by the trace tests: a hand-made trace and a field-by-field comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "offload/trace.h"

namespace mcmoe::test {

// Compares every field; weights and probs to within rel_tol (relative to 1), or bit for bit
// when rel_tol is 0 (then the first differing prob is reported).
inline void expect_equal(const offload::RoutingTrace& a, const offload::RoutingTrace& b, double rel_tol) {
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.n_layer, b.n_layer);
  EXPECT_EQ(a.n_expert, b.n_expert);
  EXPECT_EQ(a.k, b.k);
  EXPECT_EQ(a.depth, b.depth);
  EXPECT_EQ(a.m, b.m);
  EXPECT_EQ(a.expert_bytes, b.expert_bytes);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.picks, b.picks);
  EXPECT_EQ(a.predicted, b.predicted);
  auto floats = [&](const std::vector<float>& x, const std::vector<float>& y, const char* what) {
    ASSERT_EQ(x.size(), y.size()) << what;
    for (size_t i = 0; i < x.size(); ++i) {
      const bool same = rel_tol == 0 ? x[i] == y[i] : std::fabs(x[i] - y[i]) <= rel_tol * std::max(1.f, std::fabs(y[i]));
      if (!same) {
        ADD_FAILURE() << what << " differ after the round trip; first at " << i << ": " << x[i] << " vs " << y[i]
                      << " (diff " << x[i] - y[i] << ")";
        return;
      }
    }
  };
  floats(a.weights, b.weights, "weights");
  floats(a.probs, b.probs, "probs");
}

// 2 layers x 3 experts, k 2, predictions 1 ahead top-2; floats that need all 9 digits.
inline offload::RoutingTrace hand_trace() {
  offload::RoutingTrace t;
  t.model = "/some/where/model with spaces.gguf";
  t.n_layer = 2;
  t.n_expert = 3;
  t.k = 2;
  t.depth = 1;
  t.m = 2;
  t.expert_bytes = {4096, 4097, 1u << 31, 1ull << 40, 7, 8};
  t.tokens = {1, 299, 0};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    for (int l = 0; l < t.n_layer; ++l) {
      t.picks.push_back(static_cast<int16_t>((i + l) % 3));
      t.picks.push_back(i == 2 ? int16_t{-1} : static_cast<int16_t>((i + l + 1) % 3));
      t.weights.push_back(u(rng));
      t.weights.push_back(1.f / 3.f);
      for (int e = 0; e < 3; ++e) t.probs.push_back(e == 0 ? 1e-30f : u(rng));
      t.predicted.push_back(l + 1 < t.n_layer ? static_cast<int16_t>(i % 3) : int16_t{-1});
      t.predicted.push_back(l + 1 < t.n_layer ? int16_t{2} : int16_t{-1});
    }
  }
  return t;
}

}  // namespace mcmoe::test
