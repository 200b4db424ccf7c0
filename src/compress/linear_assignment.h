#pragma once
// Linear sum assignment (the Hungarian method in its O(n³) shortest-augmenting-path form,
// as Jonker-Volgenant and most libraries implement it). Used to align the hidden neurons
// of experts before merging them (compress/expert_merge.h). Written here because no
// packaged C++ library provides it on the build platform; tests compare it with brute force.
#include <vector>

namespace mcmoe::compress {

// cost: n×n, row-major. Returns the column assigned to each row, a permutation minimising
// Σ_i cost[i * n + col[i]]. Costs must be finite; fails naming the offending entry otherwise.
std::vector<int> solve_linear_assignment(const std::vector<double>& cost, int n);

}  // namespace mcmoe::compress
