#pragma once
// Next-token distributions given as logits: what perplexity, KL scoring, ODP's fit and
// quantize's KL-calibrated costs all compute, in double so long vocabularies sum exactly enough.
#include <cstdint>
#include <span>

namespace mcmoe::ops {

// log Σ exp(v), computed in double around the maximum.
double log_sum_exp(std::span<const float> logits);

// KL(P || Q) of two next-token distributions given as logits, in double.
double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits);

// -log softmax(logits)[target], computed in double.
double token_nll(std::span<const float> logits, int32_t target);

}  // namespace mcmoe::ops
