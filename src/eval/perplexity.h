#pragma once
// Perplexity with the protocol of moe_reference.py: non-overlapping windows of ctx - 1 text
// tokens, each prefixed with BOS, every token after the BOS scored.
#include <cstdint>
#include <functional>
#include <span>

#include "model/session.h"

namespace mcmoe::eval {

struct PerplexityResult {
  double ppl = 0;
  double nll_sum = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
};

PerplexityResult perplexity(model::Session& session, std::span<const int32_t> ids, int ctx,
                            int32_t bos_id,
                            const std::function<void(int64_t, int64_t, double)>& progress = nullptr);

// -log softmax(logits)[target], computed in double.
double token_nll(std::span<const float> logits, int32_t target);

}  // namespace mcmoe::eval
