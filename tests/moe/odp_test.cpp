// ODP's ratio rule and the Eq. 6 token importance on handmade inputs.
#include <gtest/gtest.h>

#include "moe/odp.h"

namespace mcmoe::moe {
namespace {

TEST(Odp, DropsSecondExpertBelowThresholdAndRenormalises) {
  OdpParams p;
  p.n_layer = 1;
  p.k = 2;
  p.mu = {0.5f};
  // Token 0: p2/p1 = 0.2/0.6 < 0.5 → pruned; token 1: 0.3/0.4 → kept; token 2 protected.
  const float probs[3 * 3] = {0.6f, 0.2f, 0.2f, 0.4f, 0.3f, 0.3f, 0.7f, 0.1f, 0.2f};
  int ids[6] = {0, 1, 0, 1, 0, 2};
  float w[6] = {0.75f, 0.25f, 4.f / 7, 3.f / 7, 0.7f / 0.9f, 0.2f / 0.9f};
  const uint8_t protect[3] = {0, 0, 1};
  OdpCounters c;
  apply_odp(p, 0, 3, 3, probs, ids, w, protect, c);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], -1);
  EXPECT_FLOAT_EQ(w[0], 1.f);
  EXPECT_FLOAT_EQ(w[1], 0.f);
  EXPECT_EQ(ids[3], 1);
  EXPECT_FLOAT_EQ(w[2], 4.f / 7);
  EXPECT_EQ(ids[5], 2);  // protected although 0.2/0.7 < 0.5
  EXPECT_EQ(c.picks, 6);
  EXPECT_EQ(c.pruned, 1);
  EXPECT_EQ(c.protected_tokens, 1);
}

TEST(Odp, UnnormalisedWeightsKeepTheirSum) {
  OdpParams p;
  p.n_layer = 1;
  p.k = 2;
  p.mu = {0.9f};
  const float probs[2] = {0.5f, 0.1f};
  int ids[2] = {0, 1};
  float w[2] = {0.5f, 0.1f};  // Qwen-style: raw probabilities
  OdpCounters c;
  apply_odp(p, 0, 1, 2, probs, ids, w, nullptr, c);
  EXPECT_EQ(ids[1], -1);
  EXPECT_FLOAT_EQ(w[0], 0.6f);
}

TEST(Odp, ImportanceIsReceivedAttentionTimesL1Norm) {
  // One head, 3 tokens, pos0 = 0: A rows are queries.
  const float probs[9] = {1.f, 0, 0, 0.5f, 0.5f, 0, 0.2f, 0.3f, 0.5f};
  const float h[6] = {1, -1, 2, 0, 0.5f, 0.5f};  // |h|_1 = 2, 2, 1
  float imp[3];
  token_importance(probs, 1, 3, 0, h, 2, imp);
  EXPECT_NEAR(imp[0], 2 * (1.0 + 0.5 + 0.2) / 3, 1e-6);  // received from queries 0, 1, 2
  EXPECT_NEAR(imp[1], 2 * (0.5 + 0.3) / 2, 1e-6);
  EXPECT_NEAR(imp[2], 1 * 0.5 / 1, 1e-6);
  std::vector<uint8_t> prot;
  protect_top(imp, 3, 0.02, prot);  // ceil(0.06) = 1 token
  EXPECT_EQ(prot, (std::vector<uint8_t>{1, 0, 0}));
  protect_top(imp, 1, 0.02, prot);  // decode: never
  EXPECT_EQ(prot, (std::vector<uint8_t>{0}));
}

TEST(Odp, ImportanceUsesOnlyTheBatchColumnsAfterACachedPrefix) {
  // Two heads, 2 queries at positions 1..2 over a context of 3 (one cached token).
  const float probs[2 * 2 * 3] = {0.5f, 0.5f, 0, 0.2f, 0.4f, 0.4f,   // head 0
                                  0.1f, 0.9f, 0, 0.3f, 0.3f, 0.4f};  // head 1
  const float h[2] = {1, 1};
  float imp[2];
  token_importance(probs, 2, 2, 1, h, 1, imp);
  EXPECT_NEAR(imp[0], ((0.5 + 0.4) + (0.9 + 0.3)) / 2 / 2, 1e-6);
  EXPECT_NEAR(imp[1], ((0.4) + (0.4)) / 2 / 1, 1e-6);
}

}  // namespace
}  // namespace mcmoe::moe
