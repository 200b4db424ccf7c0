#include "moe/odp.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mcmoe::moe {

void token_importance(const float* probs, int n_head, int64_t n, int64_t pos0, const float* h, int64_t d,
                      float* importance) {
  const int64_t ctx = pos0 + n;
  for (int64_t j = 0; j < n; ++j) {
    // Attention token j receives from the queries at or after it (the paper's Σ_{i≥j} A_ij),
    // averaged over heads, per receiving query. (MC-MoE's code sums each row over keys,
    // which is always 1; this follows the formula.)
    double received = 0;
    for (int hd = 0; hd < n_head; ++hd) {
      const float* a = probs + static_cast<int64_t>(hd) * n * ctx;
      for (int64_t i = j; i < n; ++i) received += a[i * ctx + pos0 + j];
    }
    received /= n_head * static_cast<double>(n - j);
    double l1 = 0;
    for (int64_t c = 0; c < d; ++c) l1 += std::fabs(h[j * d + c]);
    importance[j] = static_cast<float>(l1 * received);
  }
}

void protect_top(const float* importance, int64_t n, double fraction, std::vector<uint8_t>& out) {
  out.assign(static_cast<size_t>(n), 0);
  if (n <= 1 || fraction <= 0) return;
  const int64_t keep = std::min<int64_t>(n, static_cast<int64_t>(std::ceil(fraction * n)));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + keep, order.end(), [&](int64_t a, int64_t b) {
    return importance[a] > importance[b] || (importance[a] == importance[b] && a < b);
  });
  for (int64_t i = 0; i < keep; ++i) out[order[i]] = 1;
}

void apply_odp(const OdpParams& p, int layer, int64_t n, int n_expert, const float* probs, int* topk_ids,
               float* topk_w, const uint8_t* protect, OdpCounters& counters) {
  const int k = p.k;
  const float* mu = p.mu.data() + static_cast<size_t>(layer) * (k - 1);
  for (int64_t t = 0; t < n; ++t) {
    int* ids = topk_ids + t * k;
    float* w = topk_w + t * k;
    counters.picks += k;
    if (protect && protect[t]) {
      ++counters.protected_tokens;
      continue;
    }
    const float p1 = probs[t * n_expert + ids[0]];
    float total = 0, kept = 0;
    for (int j = 0; j < k; ++j) total += w[j];
    for (int j = 1; j < k; ++j) {
      if (ids[j] < 0) continue;  // folded into an earlier pick of the same merged expert
      if (probs[t * n_expert + ids[j]] < mu[j - 1] * p1) {
        ids[j] = -1;
        w[j] = 0.f;
        ++counters.pruned;
      }
    }
    for (int j = 0; j < k; ++j) kept += w[j];
    if (kept > 0 && kept != total) {
      const float scale = total / kept;
      for (int j = 0; j < k; ++j) w[j] *= scale;
    }
  }
}

}  // namespace mcmoe::moe
