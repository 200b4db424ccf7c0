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

// Merged experts (mcmoe reduce --method merge|cluster): router row r stands for stored
// expert map[r]. Rewrites each token's k picks in place to stored experts; when two picks
// land on the same expert the first keeps it with the gates summed and the later one
// becomes id -1 / weight 0 (a dropped pick, which the MoE block already skips), so the
// expert runs once and the output equals running it once per pick. merged_probs
// [n_tokens, n_expert] receives each stored expert's probability, the sum over its router
// rows, for what reads probabilities by expert (ODP, calibration).
void fold_merged_picks(const int* map, int n_router, int n_expert, int64_t n_tokens, int k, const float* probs,
                       float* merged_probs, int* topk_ids, float* topk_weights);

}  // namespace mcmoe::moe
