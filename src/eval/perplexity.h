#pragma once
// Perplexity with the protocol of moe_reference.py: non-overlapping windows of ctx - 1 text
// tokens, each prefixed with BOS, every token after the BOS scored.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/session.h"

namespace mcmoe::eval {

struct PerplexityResult {
  double ppl = 0;
  double nll_sum = 0;
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  // With a base model (ppl --kl-base): the same windows scored by both models.
  bool has_base = false;
  double base_ppl = 0;
  double kl_mean = 0;      // mean over scored tokens of KL(P_base || P_model), nats
  double kl_p99 = 0;       // 99th percentile of the per-token KL
  double top1_agree = 0;   // fraction of tokens where both argmaxes are equal
  // Routing against the base, when both route the same number of stored experts in every
  // layer (a merged model does not): per MoE layer, the share of scored tokens whose set of
  // top-k picks (ODP's drops included, as -1) equals the base's; and the share of tokens
  // with a different set in at least one layer.
  bool has_routing = false;
  std::vector<int> route_layers;    // the MoE layers, ascending
  std::vector<double> route_agree;  // [route_layers.size()]
  double route_any_flip = 0;
};

// `base`, when given, must share the tokenizer's vocabulary size with `session`.
PerplexityResult perplexity(model::Session& session, std::span<const int32_t> ids, int ctx,
                            int32_t bos_id,
                            const std::function<void(int64_t, int64_t, double)>& progress = nullptr,
                            model::Session* base = nullptr);

}  // namespace mcmoe::eval
