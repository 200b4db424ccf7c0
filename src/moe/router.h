#pragma once
#include <cstdint>

namespace mcmoe::moe {

struct RouterParams {
  int n_expert = 0;
  int k = 0;
  bool normalize_topk = true;  // Mixtral, Qwen3: renormalise the k weights to sum to 1
};

// For each of n_tokens rows of router logits: probs = softmax(logits) (f32), the k largest
// (ties: lower expert index first), and their weights (probabilities, renormalised if
// asked). probs may be null when the caller does not need them.
void route(const RouterParams& p, const float* logits, int64_t n_tokens, float* probs,
           int* topk_ids, float* topk_weights);

}  // namespace mcmoe::moe
