#pragma once
// Bit allocation over experts (MC-MoE's PMQ, ALGORITHMS.md §1) and the baselines it is
// compared with. Every method is the same exact multiple-choice knapsack: each expert takes
// exactly one width from the candidates, the widths sum exactly to the budget, at least one
// expert per layer sits at each of the two widest candidates (the paper's constraint, kept
// when the budget allows it), and the summed cost is minimal. Only the cost differs:
//   pmq        φ_e^α · w_e^β · ε_{e,b}^γ
//   hessian    trace(H)/cols · ‖W − Q_b(W)‖²_F summed over the expert's matrices (HAWQ-style)
//   frequency  φ_e^α · 2^{−b}       (importance from activation frequency alone)
//   random     uniform random costs (a random feasible allocation, seeded)
//   uniform    every expert at the budget's width (no optimisation)
// Solved by dynamic programming over (expert, bits used, constraint flags), which is exact
// and fast for any expert count (brute force is only feasible for ~8 experts).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/stats.h"

namespace mcmoe::compress {

enum class AllocMethod { kPmq, kUniform, kHessian, kFrequency, kRandom };
AllocMethod alloc_method_from_name(const std::string& name);  // fails on unknown names
const char* alloc_method_name(AllocMethod m);

struct AllocOptions {
  AllocMethod method = AllocMethod::kPmq;
  double avg_bits = 2.5;                // target average expert bits
  std::vector<int> candidates{1, 2, 3};
  double alpha = 1.0, beta = 1.5, gamma = 1.0;
  // pmq / frequency: an expert's share of its layer's picks and routing mass count as at
  // least freq_floor / n_expert, and its measured error is scaled to match (ε grows with the
  // tokens routed to it). 0: as measured.
  double freq_floor = 0.0;
  // --layer-bits: these MoE layers' own average width; the other MoE layers share what is
  // left of the model's budget (avg_bits over all experts) equally. Per-layer budgets only.
  std::map<int, double> layer_bits;
  bool global = false;                  // one budget across all layers, weighted by parameters
  bool require_top_two = true;          // ≥ 1 expert at each of the two widest widths per layer
  uint64_t seed = 1;                    // random baseline
};

struct BitPlan {
  std::vector<std::vector<int>> bits;  // [layer][expert]
  double average() const;
  std::vector<std::string> notes;      // adjustments made (budget rounding, dropped constraint)
};

// `params[l][e]`: parameters of expert e in layer l (only used by the global variant).
BitPlan allocate(const CalibrationStats& stats, const AllocOptions& o,
                 const std::vector<std::vector<int64_t>>& params);

// Worst case over calibration domains (issue 16): the plan whose largest regret over
// `domains` is smallest, where a plan's regret on a domain is its summed cost there divided
// by the cost of that domain's own optimal plan (so domains calibrated on more or fewer
// tokens weigh the same). Found by `rounds` rounds of multiplicative weights over the
// domains, each an exact allocation of their weighted, normalised costs (each domain's own
// plan is a candidate too), then pairwise width swaps within a layer while they lower the
// worst regret; the result is never worse than any single-domain plan by its worst regret. pmq,
// frequency and hessian only; every domain must have the same layers and expert counts (statistics
// of one model on different text).
struct WorstCasePlan {
  BitPlan plan;
  std::vector<double> regret;    // per domain, ≥ 1
  std::vector<double> own_cost;  // per domain, its own optimum's cost
};
WorstCasePlan allocate_worst_case(const std::vector<const CalibrationStats*>& domains,
                                  const AllocOptions& o,
                                  const std::vector<std::vector<int64_t>>& params, int rounds = 60);

// The exact solver, exposed for tests. cost[i][j] is the cost of giving item i width
// widths[j]; returns the chosen index j per item, minimising Σ cost with Σ widths == budget
// and, when `top_two`, at least one item at each of the two largest widths. Items are split
// into consecutive groups of `group_size` items (0: one group) to which the top-two
// constraint applies separately. Fails when no assignment meets the constraints.
std::vector<int> solve_allocation(const std::vector<std::vector<double>>& cost, const std::vector<int>& widths,
                                  int64_t budget, bool top_two, int group_size = 0,
                                  const std::vector<int64_t>& weights = {});
// The same with consecutive groups of the given sizes (layers with different expert counts
// after mcmoe reduce); a group of one item is exempt from the top-two constraint.
std::vector<int> solve_allocation_groups(const std::vector<std::vector<double>>& cost, const std::vector<int>& widths,
                                         int64_t budget, bool top_two, const std::vector<int>& group_sizes,
                                         const std::vector<int64_t>& weights = {});

}  // namespace mcmoe::compress
