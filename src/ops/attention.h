#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace mcmoe::ops {

struct AttentionParams {
  const float* q = nullptr;        // [n_tokens, n_head * head_dim], RoPE applied
  const float* k_cache = nullptr;  // [n_ctx, n_head_kv * head_dim]
  const float* v_cache = nullptr;  // [n_ctx, n_head_kv * head_dim]
  float* out = nullptr;            // [n_tokens, n_head * head_dim]
  int64_t n_tokens = 0;
  int64_t pos0 = 0;  // cache position of the first query token; query t sees 0..pos0+t
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  // Optional: receives the attention probabilities [n_head][n_tokens][pos0 + n_tokens]
  // (zeros above the diagonal), for importance scores that need them (ODP).
  float* probs_out = nullptr;
};

// Causal grouped-query attention with softmax(q·kᵀ / sqrt(head_dim)), parallel over
// (token, head) pairs.
void attention(const AttentionParams& p, ThreadPool& pool);

}  // namespace mcmoe::ops
