#include "compress/reduce_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace mcmoe::compress {

ReduceMethod reduce_method_from_name(const std::string& name) {
  if (name == "merge") return ReduceMethod::kMerge;
  if (name == "prune") return ReduceMethod::kPrune;
  if (name == "frequency") return ReduceMethod::kFrequency;
  if (name == "cluster") return ReduceMethod::kCluster;
  fail("--method: unknown method '{}' (expected merge, prune, frequency or cluster)", name);
}

const char* reduce_method_name(ReduceMethod m) {
  switch (m) {
    case ReduceMethod::kMerge: return "merge";
    case ReduceMethod::kPrune: return "prune";
    case ReduceMethod::kFrequency: return "frequency";
    case ReduceMethod::kCluster: return "cluster";
  }
  return "?";
}

bool reduce_merges(ReduceMethod m) { return m == ReduceMethod::kMerge || m == ReduceMethod::kCluster; }

void check_keep(double keep) {
  if (!(keep > 0.0 && keep <= 1.0)) {
    fail("--keep {}: the fraction of experts to keep must be in (0, 1]", keep);
  }
}

std::vector<int> top_experts(const std::vector<double>& scores, int count) {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  order.resize(static_cast<size_t>(std::clamp(count, 0, static_cast<int>(scores.size()))));
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<int> kept_counts(const std::vector<std::vector<double>>& scores, double keep, int min_per_layer,
                             bool adaptive) {
  check_keep(keep);
  const int n_layer = static_cast<int>(scores.size());
  std::vector<int> counts(n_layer), floor(n_layer);
  int64_t total = 0, forced = 0;
  for (int l = 0; l < n_layer; ++l) {
    const int n = static_cast<int>(scores[l].size());
    floor[l] = std::min(min_per_layer, n);
    total += n;
    forced += floor[l];
  }
  if (!adaptive) {
    for (int l = 0; l < n_layer; ++l) {
      const int n = static_cast<int>(scores[l].size());
      counts[l] = std::clamp(static_cast<int>(std::llround(keep * n)), floor[l], n);
    }
    return counts;
  }
  const int64_t target = std::clamp<int64_t>(std::llround(keep * static_cast<double>(total)), forced, total);
  // Each layer's best floor[l] experts are kept regardless; the others compete across layers
  // by their share of the layer's total score (raw scores differ in scale between layers).
  struct Candidate {
    double share;
    int layer;
  };
  std::vector<Candidate> rest;
  for (int l = 0; l < n_layer; ++l) {
    std::vector<double> s = scores[l];
    double sum = 0;
    for (double x : s) sum += std::max(0.0, x);
    for (double& x : s) x = sum > 0 ? std::max(0.0, x) / sum : 1.0 / static_cast<double>(s.size());
    std::sort(s.begin(), s.end(), std::greater<>());
    counts[l] = floor[l];
    for (size_t r = static_cast<size_t>(floor[l]); r < s.size(); ++r) rest.push_back({s[r], l});
  }
  // Stable: equal shares go to the lower layer first (and within a layer, the better rank).
  std::stable_sort(rest.begin(), rest.end(), [](const Candidate& a, const Candidate& b) { return a.share > b.share; });
  for (int64_t i = 0; i < target - forced; ++i) ++counts[rest[i].layer];
  return counts;
}

std::vector<double> router_similarity(const std::vector<double>& gram, int n) {
  if (gram.size() != static_cast<size_t>(n) * n) fail("router similarity: {} values for {} experts", gram.size(), n);
  std::vector<double> sim(gram.size());
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double norm = std::sqrt(gram[i * n + i] * gram[j * n + j]);
      const double cos = norm > 0 ? std::clamp(gram[i * n + j] / norm, -1.0, 1.0) : (i == j ? 1.0 : 0.0);
      sim[i * n + j] = (cos + 1.0) / 2.0;
    }
  }
  return sim;
}

std::vector<int> canonical_groups(const std::vector<int>& group) {
  std::vector<int> renumber(group.size() + 1, -1), out(group.size());
  int next = 0;
  for (size_t e = 0; e < group.size(); ++e) {
    const int g = group[e];
    if (g < 0 || g >= static_cast<int>(renumber.size())) fail("grouping: group id {} out of range", g);
    if (renumber[g] < 0) renumber[g] = next++;
    out[e] = renumber[g];
  }
  return out;
}

std::vector<int> group_by_similarity(const std::vector<int>& dominant, const std::vector<double>& similarity, int n) {
  if (dominant.empty()) fail("grouping: no dominant expert");
  if (similarity.size() != static_cast<size_t>(n) * n) fail("grouping: {} similarities for {} experts", similarity.size(), n);
  std::vector<int> group(n, -1);
  for (int d : dominant) {
    if (d < 0 || d >= n) fail("grouping: dominant expert {} out of range [0, {})", d, n);
    group[d] = d;
  }
  for (int e = 0; e < n; ++e) {
    if (group[e] >= 0) continue;
    int best = dominant[0];
    for (int d : dominant) {
      if (similarity[e * n + d] > similarity[e * n + best] || (similarity[e * n + d] == similarity[e * n + best] && d < best)) {
        best = d;
      }
    }
    group[e] = best;
  }
  return canonical_groups(group);
}

std::vector<int> cluster_average_linkage(const std::vector<std::vector<double>>& points, int n_clusters) {
  const int n = static_cast<int>(points.size());
  if (n_clusters < 1 || n_clusters > n) fail("clustering: {} clusters of {} points", n_clusters, n);
  std::vector<double> dist(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) {
    for (int j = i + 1; j < n; ++j) {
      if (points[i].size() != points[j].size()) fail("clustering: points of different dimension");
      double s = 0;
      for (size_t c = 0; c < points[i].size(); ++c) s += (points[i][c] - points[j][c]) * (points[i][c] - points[j][c]);
      dist[i * n + j] = dist[j * n + i] = std::sqrt(s);
    }
  }
  // members[c]: the points of cluster c (empty once merged away). Average linkage: the
  // distance of two clusters is the mean distance over their cross pairs, recomputed from
  // the point distances (n is the expert count of a layer, so O(n^4) is nothing).
  std::vector<std::vector<int>> members(n);
  for (int i = 0; i < n; ++i) members[i] = {i};
  for (int alive = n; alive > n_clusters; --alive) {
    double best = std::numeric_limits<double>::infinity();
    int ba = -1, bb = -1;
    for (int a = 0; a < n; ++a) {
      if (members[a].empty()) continue;
      for (int b = a + 1; b < n; ++b) {
        if (members[b].empty()) continue;
        double s = 0;
        for (int i : members[a]) {
          for (int j : members[b]) s += dist[i * n + j];
        }
        s /= static_cast<double>(members[a].size() * members[b].size());
        if (s < best) {
          best = s;
          ba = a;
          bb = b;
        }
      }
    }
    members[ba].insert(members[ba].end(), members[bb].begin(), members[bb].end());
    members[bb].clear();
  }
  std::vector<int> group(n);
  for (int c = 0; c < n; ++c) {
    for (int i : members[c]) group[i] = c;
  }
  return canonical_groups(group);
}

}  // namespace mcmoe::compress
