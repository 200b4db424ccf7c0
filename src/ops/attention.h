#pragma once
// Causal multi-head attention over a KV cache, for every attention kind the families use:
// grouped-query (any number of query heads per key/value head, down to MQA), value heads of
// another size than key heads (MLA), a softmax scale of the model's choosing, attention
// sinks (gpt-oss: one extra logit per head in every softmax, with no value) and a sliding
// window (query at position p sees keys j with p − j < window).
//
// The fast path is flash-attention style: blocks of queries against blocks of keys through
// sgemm, an online softmax, no [n, ctx] matrix in memory, causal and window blocks skipped
// whole, and during decode the keys split across threads with the partial softmaxes merged.
// attention_reference is the slow, obviously correct version it is tested against.
#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace mcmoe::ops {

struct AttentionParams {
  // Query head h of token t: q + t * q_stride + h * q_head_stride, head_dim values (after RoPE).
  const float* q = nullptr;
  int64_t q_stride = 0;       // 0: n_head * q_head_stride
  int64_t q_head_stride = 0;  // 0: head_dim
  // Key head g at position j: k + j * k_stride + g * k_head_stride; value likewise. Strides
  // count values; rows are in kv_type (f32, f16 or q8_0: row_bytes(kv_type, k_stride) apart).
  const void* k = nullptr;
  int64_t k_stride = 0;       // 0: n_head_kv * k_head_stride
  int64_t k_head_stride = 0;  // 0: head_dim
  const void* v = nullptr;
  int64_t v_stride = 0;       // 0: n_head_kv * v_head_stride
  int64_t v_head_stride = 0;  // 0: head_dim_v
  DType kv_type = DType::F32;
  // Output head h of token t: out + t * out_stride + h * head_dim_v.
  float* out = nullptr;
  int64_t out_stride = 0;  // 0: n_head * head_dim_v
  int64_t n_tokens = 0;
  int64_t pos0 = 0;  // cache position of the first query token; query t sits at pos0 + t
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;              // q·k length
  int head_dim_v = 0;            // 0: head_dim
  float scale = 0.f;             // 0: 1 / sqrt(head_dim)
  const float* sinks = nullptr;  // [n_head] or null
  int64_t window = 0;            // 0: none
  // Optional: receives the attention probabilities [n_head][n_tokens][pos0 + n_tokens]
  // (zeros where masked), for importance scores that need them (ODP). Slow path.
  float* probs_out = nullptr;
};

void attention(const AttentionParams& p, ThreadPool& pool);

// Double-precision, one (token, head) at a time: the reference for tests.
void attention_reference(const AttentionParams& p);

}  // namespace mcmoe::ops
