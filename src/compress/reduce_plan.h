#pragma once
// Which experts an expert-reduction keeps and how the rest are grouped (ALGORITHMS.md §4).
// Pure functions over calibration measurements, so each rule is tested on handcrafted
// numbers; compress/reduce_model.h measures and applies them.
#include <string>
#include <vector>

namespace mcmoe::compress {

enum class ReduceMethod {
  kMerge,      // M-SMoE: dominant experts by frequency, the rest join the most router-similar one
  kPrune,      // REAP: drop the experts with the lowest mean gate · ‖output‖
  kFrequency,  // baseline: drop the least frequently routed experts
  kCluster,    // HC-SMoE-style: average-linkage clustering of the experts' mean outputs
};
ReduceMethod reduce_method_from_name(const std::string& name);  // fails naming --method
const char* reduce_method_name(ReduceMethod m);
bool reduce_merges(ReduceMethod m);  // merge and cluster keep the router's rows

// Fails naming --keep unless 0 < keep <= 1.
void check_keep(double keep);

// Experts each layer keeps, from per-layer scores (higher = more worth keeping):
//   uniform:  round(keep · N_l) in every layer;
//   adaptive: one global threshold on each expert's share of its layer's total score, so
//             layers whose scores are spread evenly keep more experts than layers dominated
//             by a few; the total kept is round(keep · Σ N_l).
// Either way every layer keeps at least min(min_per_layer, N_l).
std::vector<int> kept_counts(const std::vector<std::vector<double>>& scores, double keep, int min_per_layer,
                             bool adaptive);

// The `count` highest-scoring indices (ties: lower index first), in ascending index order.
std::vector<int> top_experts(const std::vector<double>& scores, int count);

// M-SMoE similarity from the Gram matrix of router logits over calibration tokens
// (gram[i * n + j] = Σ_t z_ti z_tj): (cos(column i, column j) + 1) / 2, in [0, 1].
std::vector<double> router_similarity(const std::vector<double>& gram, int n);

// Group of every expert: each dominant expert founds one, every other joins the dominant
// expert it is most similar to (similarity n×n; ties: lower index). Groups are numbered in
// the order of their smallest member.
std::vector<int> group_by_similarity(const std::vector<int>& dominant, const std::vector<double>& similarity, int n);

// Average-linkage agglomerative clustering of points by Euclidean distance into n_clusters
// groups (ties: the pair with the lower indices merges first); numbered as above.
std::vector<int> cluster_average_linkage(const std::vector<std::vector<double>>& points, int n_clusters);

// Renumbers group ids by the smallest member (so an identity grouping maps e to e).
std::vector<int> canonical_groups(const std::vector<int>& group);

}  // namespace mcmoe::compress
