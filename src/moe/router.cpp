#include "moe/router.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mcmoe::moe {

void route(const RouterParams& p, const float* logits, int64_t n_tokens, float* probs_out,
           int* topk_ids, float* topk_weights) {
  // Reused across calls: routing runs once per layer per token.
  thread_local std::vector<float> probs;
  thread_local std::vector<int> order;
  probs.resize(static_cast<size_t>(p.n_expert));
  order.resize(static_cast<size_t>(p.n_expert));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* l = logits + t * p.n_expert;
    const float mx = *std::max_element(l, l + p.n_expert);
    float sum = 0.f;
    for (int e = 0; e < p.n_expert; ++e) {
      probs[e] = std::exp(l[e] - mx);
      sum += probs[e];
    }
    for (int e = 0; e < p.n_expert; ++e) probs[e] /= sum;
    if (probs_out) std::copy(probs.begin(), probs.end(), probs_out + t * p.n_expert);
    for (int e = 0; e < p.n_expert; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + p.k, order.end(), [&](int a, int b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    float wsum = 0.f;
    for (int j = 0; j < p.k; ++j) wsum += probs[order[j]];
    for (int j = 0; j < p.k; ++j) {
      topk_ids[t * p.k + j] = order[j];
      topk_weights[t * p.k + j] = p.normalize_topk ? probs[order[j]] / wsum : probs[order[j]];
    }
  }
}

void fold_merged_picks(const int* map, int n_router, int n_expert, int64_t n_tokens, int k, const float* probs,
                       float* merged_probs, int* topk_ids, float* topk_weights) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* mp = merged_probs + t * n_expert;
    std::fill(mp, mp + n_expert, 0.f);
    for (int r = 0; r < n_router; ++r) mp[map[r]] += probs[t * n_router + r];
    int* ids = topk_ids + t * k;
    float* w = topk_weights + t * k;
    for (int j = 0; j < k; ++j) {
      if (ids[j] < 0) continue;
      ids[j] = map[ids[j]];
      for (int i = 0; i < j; ++i) {
        if (ids[i] == ids[j]) {
          w[i] += w[j];
          ids[j] = -1;
          w[j] = 0.f;
          break;
        }
      }
    }
  }
}

}  // namespace mcmoe::moe
