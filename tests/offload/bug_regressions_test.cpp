// Regression tests for two bugs found in src/offload while writing the offloading tests;
// both fail until the fixes described in each test's comment land (verified against a patched
// build: both pass with them).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "model/model.h"
#include "offload/offload_provider.h"
#include "offload/offload_test_util.h"
#include "offload/predictor.h"
#include "offload/trace.h"
#include "offload/trace_test_util.h"

namespace mcmoe::offload {
namespace {

// write_trace prints floats at the stream's default 6 significant digits, so weights and
// probs come back rounded. Fix (src/offload/trace.cpp, write_trace): print them with
// std::numeric_limits<float>::max_digits10 (9) digits, e.g.
// `out << std::setprecision(std::numeric_limits<float>::max_digits10);` before the rows.
TEST(Trace, RoundTripIsBitExact) {
  test::TempDir dir;
  write_trace(test::hand_trace(), dir.path("hand.trace"));
  test::expect_equal(read_trace(dir.path("hand.trace")), test::hand_trace(), 0);
  auto m = model::Model::load(test::small_offload_model());
  const std::vector<int32_t> tokens = {5, 77, 120, 9, 250, 31, 64, 199};
  TraceOptions o;
  o.ctx = 8;
  const RoutingTrace t = record_trace(*m, tokens, o);
  write_trace(t, dir.path("rec.trace"));
  test::expect_equal(read_trace(dir.path("rec.trace")), t, 0);
}

// The recall window stores each step's number of right guesses in a std::deque<bool>
// (src/offload/offload_provider.h, recall_window_hits_), so a step with 2 right guesses adds
// 2 to window_right_ but takes away only 1 when it leaves the window: window_right_ only
// grows, measured recall drifts above 1 and prefetch never pauses once guesses were good.
// Fix: std::deque<int> recall_window_hits_.
// Prefetch pauses when the measured next-layer recall (last 64 layer steps) falls below
// prefetch_min_recall, and resumes when it recovers. The driver routes each layer either to
// exactly the experts the previous layer's router guess named (recall 1) or to others (0).
TEST(OffloadProvider, PrefetchPausesWhenRecallDropsAndResumes) {
  const std::string& path = test::small_offload_model();
  auto probe = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  OffloadOptions o = test::offload_options("lru", test::total_expert_bytes(*probe) / 2, 1);
  o.prefetch_m = 2;
  o.prefetch_min_recall = 0.5;
  o.prefetch_max_bytes = o.budget;
  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(path, o, &p);
  RoutePredictor predictor(*m);  // the same routers the provider guesses with
  const int n_layer = m->config().n_layer, n_expert = m->config().n_expert;
  std::mt19937 rng(23);
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(m->config().n_embd));
  std::vector<int> guess(2);
  auto tokens = [&](int n, bool follow) {
    for (int t = 0; t < n; ++t) {
      for (int l = 0; l < n_layer; ++l) {
        std::vector<int> experts;
        if (l == 0) {
          experts = {0, 1};
        } else if (follow) {
          experts = guess;
        } else {
          for (int e = 0; e < n_expert && experts.size() < 2; ++e) {
            if (std::find(guess.begin(), guess.end(), e) == guess.end()) experts.push_back(e);
          }
        }
        const std::vector<float> w = {0.6f, 0.4f};
        size_t first = 0;
        while (first < experts.size()) {
          const std::span<const int> rest(experts.data() + first, experts.size() - first);
          const size_t count = p->begin_layer(l, rest, std::span<const float>(w.data() + first, rest.size()));
          for (size_t j = 0; j < count; ++j) p->get(l, rest[j]);
          p->end_layer(l);
          first += count;
        }
        for (auto& v : x) v = gauss(rng);
        p->after_layer(l, x.data(), 1);
        if (l + 1 < n_layer) {
          ASSERT_TRUE(predictor.predict(l, 1, x.data(), 2, guess.data()));
        }
      }
    }
  };
  tokens(40, true);
  OffloadStats s = p->stats();
  ASSERT_EQ(s.pred_used.size(), 1u);
  EXPECT_EQ(s.pred_used[0], 40 * (n_layer - 1) * 2);
  EXPECT_EQ(s.pred_right[0], s.pred_used[0]);  // the driver followed every guess
  EXPECT_EQ(s.prefetch_paused_tokens, 0);
  EXPECT_GT(s.prefetches_used, 0);
  tokens(40, false);  // recall 0: after ~32 layer steps (11 tokens) the window says < 0.5
  s = p->stats();
  EXPECT_EQ(s.pred_right[0], 40 * (n_layer - 1) * 2);
  EXPECT_GE(s.prefetch_paused_tokens, 20) << "prefetch kept running at recall 0";
  const int64_t paused = s.prefetch_paused_tokens, prefetches = s.prefetches;
  tokens(40, true);  // recall back to 1: prefetch resumes
  s = p->stats();
  EXPECT_LT(s.prefetch_paused_tokens, paused + 40);
  EXPECT_GT(s.prefetches, prefetches);
  EXPECT_EQ(s.decode_tokens, 120);
}

}  // namespace
}  // namespace mcmoe::offload
