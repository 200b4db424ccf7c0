// Cache-aware routing in a live offloaded session (SessionOptions::cache_aware_margin with
// OffloadingProvider::cached_mask): margin 0 leaves the logits bit-identical to the resident
// model; with a margin, every pick that changed was uncached when the layer routed and moved
// to a cached expert within the margin, and the run reads fewer experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "model/observer.h"
#include "model/session.h"
#include "moe/router.h"
#include "offload/offload_provider.h"
#include "offload/offload_test_util.h"

namespace mcmoe::offload {
namespace {

using namespace std::chrono_literals;

const std::string& trained_model() {
  static const std::string p = std::string(MCMOE_SOURCE_DIR) + "/models/mixtral-tiny-q4_0.gguf";
  return p;
}

// Checks each layer's final picks against plain top-k routing and the cache as it stood.
class SwapChecker final : public model::ForwardObserver {
 public:
  SwapChecker(const OffloadingProvider*& provider, float margin)
      : provider_(provider), margin_(margin) {}
  void on_routing(const model::RoutingEvent& e) override {
    std::vector<uint8_t> cached(e.n_expert);
    provider_->cached_mask(e.layer, cached);
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      const float* p = e.probs + t * e.n_expert;
      // Mixtral's plain choice: the k best scores (ties to the lower index).
      std::vector<int> order(e.n_expert);
      for (int i = 0; i < e.n_expert; ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      for (int j = 0; j < e.k; ++j) {
        const int plain = order[j], got = e.topk_ids[t * e.k + j];
        ++picks;
        if (plain == got) continue;
        ++swaps;
        EXPECT_FALSE(cached[plain]) << "layer " << e.layer << ": a cached pick was replaced";
        EXPECT_TRUE(cached[got]) << "layer " << e.layer << ": replaced by an uncached expert";
        EXPECT_GE(p[got], (1 - margin_) * p[plain])
            << "layer " << e.layer << ": outside the margin";
      }
    }
  }
  int64_t picks = 0, swaps = 0;

 private:
  const OffloadingProvider*& provider_;
  float margin_;
};

TEST(CacheAwareRouting, MarginZeroIsBitIdenticalAndSwapsStayWithinTheMargin) {
  test::Watchdog dog("cache-aware routing", 120s);
  auto resident = model::Model::load(trained_model());
  const std::vector<int32_t> tokens = test::test_tokens(resident->config().n_vocab);
  const std::vector<float> want = test::run_logits(*resident, tokens);
  const uint64_t total = test::total_expert_bytes(*resident);

  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(trained_model(), test::offload_options("lfu", total / 4, 0), &p);
  const std::vector<float> zero = test::run_logits(
      *m, tokens, {}, [](model::SessionOptions& so) { so.cache_aware_margin = 0.f; });
  EXPECT_TRUE(test::same_bits(zero, want));
  const int64_t reads_plain = p->stats().reads;

  const float margin = 0.5f;
  OffloadingProvider* q = nullptr;
  auto m2 = test::load_offloaded(trained_model(), test::offload_options("lfu", total / 4, 0), &q);
  const OffloadingProvider* view = q;
  SwapChecker checker(view, margin);
  const std::vector<float> got = test::run_logits(*m2, tokens, {}, [&](model::SessionOptions& so) {
    so.cache_aware_margin = margin;
    so.observer = &checker;
  });
  EXPECT_GT(checker.picks, 0);
  EXPECT_GT(checker.swaps, 0);               // at a quarter of the experts, some pick moves
  EXPECT_LT(q->stats().reads, reads_plain);  // and fewer experts are read
  EXPECT_FALSE(test::same_bits(got, want));
}

TEST(CacheAwareRouting, MarginOutsideZeroToOneIsRefused) {
  auto m = model::Model::load(trained_model());
  for (float bad : {-0.1f, 1.5f}) {
    model::SessionOptions so;
    so.cache_aware_margin = bad;
    EXPECT_THROW(model::Session(*m, so), Error) << bad;
  }
}

}  // namespace
}  // namespace mcmoe::offload
