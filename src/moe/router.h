#pragma once
// Turning router logits into each token's k experts and their weights, for every routing
// rule the families use:
//   softmax over all experts, top-k, optionally renormalised (Mixtral, Qwen, OLMoE);
//   top-k of the logits, softmax over those k only (gpt-oss, Granite);
//   softmax (DeepSeek-V2) or sigmoid (DeepSeek-V3, GLM-4.5) scores, a selection-only bias
//   (e_score_correction_bias), expert groups limiting the choice (the topk_group groups with
//   the highest maximum score, or the highest sum of their two best), renormalisation, then
//   routed_scaling_factor.
#include <cstdint>

namespace mcmoe::moe {

enum class ScoreFunc { Softmax, Sigmoid };
// How groups of experts limit the choice: none; keep the topk_group groups with the highest
// maximum (DeepSeek-V2's group_limited_greedy); or with the highest sum of their two best
// choices (noaux_tc: DeepSeek-V3, GLM-4.5).
enum class GroupSelect { None, Max, Top2Sum };

// A family's routing rule (model::ModelConfig::router).
struct RouterRule {
  ScoreFunc score = ScoreFunc::Softmax;
  bool softmax_over_topk = false;  // gpt-oss, Granite: top-k of the logits, softmax over those k
  GroupSelect group = GroupSelect::None;
  int n_group = 1, topk_group = 1;
  bool norm_topk = true;     // divide the k weights by their sum
  float scale = 1.f;         // routed_scaling_factor, after normalisation
  bool bias = false;         // the router linear carries a bias (gpt-oss), added to the logits
  bool choice_bias = false;  // e_score_correction_bias: added to the scores for selection only
};

struct RouterParams {
  int n_expert = 0;
  int k = 0;
  RouterRule rule;
  const float* choice_bias = nullptr;  // [n_expert] when rule.choice_bias
};

// For each of n_tokens rows of router logits (router bias already added): the k chosen
// experts, best choice first (ties: lower index first), and their weights. probs
// [n_tokens, n_expert] (may be null) receives scores whose ratios are the weights' ratios:
// the softmax over all experts for softmax and top-k-softmax routers, the sigmoid scores
// for sigmoid routers; statistics (calibration, ODP, traces) read these.
void route(const RouterParams& p, const float* logits, int64_t n_tokens, float* probs, int* topk_ids,
           float* topk_weights);

// Merged experts (mcmoe reduce --method merge|cluster): router row r stands for stored
// expert map[r]. Rewrites each token's k picks in place to stored experts; when two picks
// land on the same expert the first keeps it with the gates summed and the later one
// becomes id -1 / weight 0 (a dropped pick, which the MoE block already skips), so the
// expert runs once and the output equals running it once per pick. merged_probs
// [n_tokens, n_expert] receives each stored expert's probability, the sum over its router
// rows, for what reads probabilities by expert (ODP, calibration).
void fold_merged_picks(const int* map, int n_router, int n_expert, int64_t n_tokens, int k, const float* probs,
                       float* merged_probs, int* topk_ids, float* topk_weights);

// Cache-aware routing (opt-in, for offloaded experts): each pick whose expert is not cached
// (cached[e] == 0) is replaced by the best-scoring cached expert not already picked whose
// score is at least (1 - margin) × the pick's score. probs are route()'s scores (by stored
// expert), whose ratios are the weights' ratios, so the new pick's weight is the old one
// times the score ratio; with `renormalise` (rules that normalise their k weights) the k
// weights are then scaled back to their previous sum. Picks are visited best first, dropped
// picks (id -1) are skipped, and margin <= 0 changes nothing at all.
struct CacheAwareCounts {
  int64_t picks = 0;     // picks looked at
  int64_t uncached = 0;  // of which not cached
  int64_t swapped = 0;   // of which replaced by a cached expert
};
void prefer_cached(float margin, const float* probs, int n_expert, int64_t n_tokens, int k,
                   const uint8_t* cached, bool renormalise, int* topk_ids, float* topk_weights,
                   CacheAwareCounts& counts);

}  // namespace mcmoe::moe
