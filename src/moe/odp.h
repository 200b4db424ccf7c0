#pragma once
// Online dynamic pruning (MC-MoE's ODP, ALGORITHMS.md §2): a token drops its j-th expert
// (j >= 2) when p_j / p_1 < μ_{l,j}, the remaining weights taking the dropped one's share,
// unless the token is among the most important of a prefill batch (Eq. 6: the attention it
// receives from later queries times the L1 norm of its MoE input).
#include <cstdint>
#include <vector>

namespace mcmoe::moe {

struct OdpParams {
  int n_layer = 0;
  int k = 2;
  std::vector<float> mu;             // [n_layer * (k - 1)]: threshold of slot j = 2..k per layer
  std::vector<uint8_t> layer_on;     // [n_layer]: 1 where ODP applies (default all)
  double protect_fraction = 0.02;    // of the tokens in a prefill batch; 0 disables protection
  bool enabled(int layer) const { return layer_on.empty() || layer_on[layer] != 0; }
};

struct OdpCounters {
  int64_t picks = 0;   // expert activations the router asked for, in every MoE layer
  int64_t pruned = 0;  // of which dropped
  int64_t protected_tokens = 0;
  double pruned_fraction() const { return picks ? static_cast<double>(pruned) / picks : 0.0; }
};

// Eq. 6 for a batch of n query tokens at positions pos0..pos0+n-1:
//   I_j = ‖h_j‖₁ · (Σ_{i ≥ j} A_{i,j}) / (n − j),  A averaged over heads,
// over the batch's own queries (earlier batches are already done). probs: [n_head][n][ctx]
// as ops::attention writes them (ctx = pos0 + n); h: [n, d].
void token_importance(const float* probs, int n_head, int64_t n, int64_t pos0, const float* h, int64_t d,
                      float* importance);

// Marks the ceil(fraction · n) most important tokens (ties: earlier first); n == 1 (decode)
// marks none.
void protect_top(const float* importance, int64_t n, double fraction, std::vector<uint8_t>& out);

// Applies the ratio rule in place. topk_ids / topk_w: [n, k] best first (ids of -1 are
// skipped); probs: [n, n_expert] softmax. A dropped slot gets id -1 and weight 0; the kept weights are scaled so they sum
// to what all k summed (for renormalised top-2 the first weight becomes 1).
void apply_odp(const OdpParams& p, int layer, int64_t n, int n_expert, const float* probs, int* topk_ids,
               float* topk_w, const uint8_t* protect, OdpCounters& counters);

}  // namespace mcmoe::moe
