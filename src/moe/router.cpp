#include "moe/router.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mcmoe::moe {

void route(const RouterParams& p, const float* logits, int64_t n_tokens, float* probs_out, int* topk_ids,
           float* topk_weights) {
  const RouterRule& r = p.rule;
  const int E = p.n_expert, k = p.k;
  // Reused across calls: routing runs once per layer per token.
  thread_local std::vector<float> scores, choice, group_score;
  thread_local std::vector<int> order, groups;
  scores.resize(E);
  choice.resize(E);
  order.resize(E);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* l = logits + t * E;
    // Softmax over all experts (also what top-k-softmax routers report as probabilities).
    if (r.score == ScoreFunc::Softmax || r.softmax_over_topk) {
      const float mx = *std::max_element(l, l + E);
      float sum = 0.f;
      for (int e = 0; e < E; ++e) sum += scores[e] = std::exp(l[e] - mx);
      for (int e = 0; e < E; ++e) scores[e] /= sum;
    } else {
      for (int e = 0; e < E; ++e) scores[e] = 1.f / (1.f + std::exp(-l[e]));
    }
    if (probs_out) std::copy(scores.begin(), scores.end(), probs_out + t * E);
    // What the choice ranks: the logits (top-k-softmax), else the scores plus the selection bias.
    for (int e = 0; e < E; ++e) {
      choice[e] = r.softmax_over_topk ? l[e] : scores[e] + (p.choice_bias ? p.choice_bias[e] : 0.f);
    }
    if (r.group != GroupSelect::None) {
      // Experts outside the topk_group best groups cannot be chosen. (Hugging Face fills them
      // with 0, DeepSeek's own code and llama.cpp with −inf; the same whenever the kept
      // choices are positive, as sigmoid or softmax scores with a non-negative bias are.)
      const int per = E / r.n_group;
      group_score.resize(r.n_group);
      groups.resize(r.n_group);
      for (int g = 0; g < r.n_group; ++g) {
        const float* c = choice.data() + g * per;
        if (r.group == GroupSelect::Max) {
          group_score[g] = *std::max_element(c, c + per);
        } else {
          float a = -INFINITY, b = -INFINITY;  // the two best
          for (int i = 0; i < per; ++i) {
            if (c[i] > a) {
              b = a;
              a = c[i];
            } else if (c[i] > b) {
              b = c[i];
            }
          }
          group_score[g] = a + b;
        }
        groups[g] = g;
      }
      std::partial_sort(groups.begin(), groups.begin() + r.topk_group, groups.end(), [&](int a, int b) {
        return group_score[a] > group_score[b] || (group_score[a] == group_score[b] && a < b);
      });
      for (int i = r.topk_group; i < r.n_group; ++i) std::fill_n(choice.data() + groups[i] * per, per, -INFINITY);
    }
    for (int e = 0; e < E; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      return choice[a] > choice[b] || (choice[a] == choice[b] && a < b);
    });
    int* ids = topk_ids + t * k;
    float* w = topk_weights + t * k;
    for (int j = 0; j < k; ++j) ids[j] = order[j];
    if (r.softmax_over_topk) {
      // Softmax over the k chosen logits, from the logits (no underflow of tiny probabilities).
      const float mx = l[ids[0]];
      float sum = 0.f;
      for (int j = 0; j < k; ++j) sum += w[j] = std::exp(l[ids[j]] - mx);
      for (int j = 0; j < k; ++j) w[j] /= sum;
      continue;
    }
    float sum = 0.f;
    for (int j = 0; j < k; ++j) sum += w[j] = scores[ids[j]];
    // +1e-20 as DeepSeek-V3 and GLM-4.5 write it; it changes nothing for sums near 1.
    if (r.norm_topk) {
      for (int j = 0; j < k; ++j) w[j] /= sum + 1e-20f;
    }
    if (r.scale != 1.f) {
      for (int j = 0; j < k; ++j) w[j] *= r.scale;
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

void prefer_cached(float margin, const float* probs, int n_expert, int64_t n_tokens, int k,
                   const uint8_t* cached, bool renormalise, int* topk_ids, float* topk_weights,
                   CacheAwareCounts& counts) {
  if (!(margin > 0)) return;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* p = probs + t * n_expert;
    int* ids = topk_ids + t * k;
    float* w = topk_weights + t * k;
    float sum_before = 0.f;
    bool changed = false;
    for (int j = 0; j < k; ++j) {
      if (ids[j] < 0) continue;
      sum_before += w[j];
      ++counts.picks;
      if (cached[ids[j]]) continue;
      ++counts.uncached;
      const float floor = (1.f - margin) * p[ids[j]];
      int best = -1;
      for (int e = 0; e < n_expert; ++e) {
        if (!cached[e] || p[e] < floor || (best >= 0 && p[e] <= p[best])) continue;
        if (std::find(ids, ids + k, e) != ids + k) continue;
        best = e;
      }
      if (best < 0) continue;
      // A zero score cannot be a pick's (route() picks the best), but guard the ratio anyway.
      w[j] = p[ids[j]] > 0.f ? w[j] * (p[best] / p[ids[j]]) : w[j];
      ids[j] = best;
      ++counts.swapped;
      changed = true;
    }
    if (changed && renormalise) {
      float sum_after = 0.f;
      for (int j = 0; j < k; ++j) sum_after += ids[j] >= 0 ? w[j] : 0.f;
      if (sum_after > 0.f) {
        for (int j = 0; j < k; ++j) w[j] *= sum_before / sum_after;
      }
    }
  }
}

}  // namespace mcmoe::moe
