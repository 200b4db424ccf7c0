#include "compress/allocate.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

#include "core/error.h"

namespace mcmoe::compress {

AllocMethod alloc_method_from_name(const std::string& name) {
  if (name == "pmq") return AllocMethod::kPmq;
  if (name == "uniform") return AllocMethod::kUniform;
  if (name == "hessian") return AllocMethod::kHessian;
  if (name == "frequency") return AllocMethod::kFrequency;
  if (name == "random") return AllocMethod::kRandom;
  fail("--alloc: unknown method '{}' (expected pmq, uniform, hessian, frequency or random)", name);
}

const char* alloc_method_name(AllocMethod m) {
  switch (m) {
    case AllocMethod::kPmq: return "pmq";
    case AllocMethod::kUniform: return "uniform";
    case AllocMethod::kHessian: return "hessian";
    case AllocMethod::kFrequency: return "frequency";
    case AllocMethod::kRandom: return "random";
  }
  return "?";
}

double BitPlan::average() const {
  double sum = 0;
  int64_t n = 0;
  for (const auto& layer : bits) {
    for (int b : layer) sum += b;
    n += static_cast<int64_t>(layer.size());
  }
  return n ? sum / n : 0.0;
}

std::vector<int> solve_allocation(const std::vector<std::vector<double>>& cost, const std::vector<int>& widths,
                                  int64_t budget, bool top_two, int group_size,
                                  const std::vector<int64_t>& weights) {
  const int n = static_cast<int>(cost.size());
  if (group_size <= 0) group_size = n;
  if (n == 0 || n % group_size != 0) {
    fail("allocation: {} items do not split into groups of {}", n, group_size);
  }
  return solve_allocation_groups(cost, widths, budget, top_two, std::vector<int>(n / group_size, group_size), weights);
}

std::vector<int> solve_allocation_groups(const std::vector<std::vector<double>>& cost, const std::vector<int>& widths,
                                         int64_t budget, bool top_two, const std::vector<int>& group_sizes,
                                         const std::vector<int64_t>& weights) {
  const int n = static_cast<int>(cost.size());
  const int m = static_cast<int>(widths.size());
  if (n == 0 || m == 0) fail("allocation: no items or no widths");
  if (!weights.empty() && static_cast<int>(weights.size()) != n) fail("allocation: {} weights for {} items", weights.size(), n);
  for (const auto& row : cost) {
    if (static_cast<int>(row.size()) != m) fail("allocation: a cost row has {} entries, expected {}", row.size(), m);
  }
  // group_end[i]: item i closes its group; a group of one item cannot hold two widths, so
  // the top-two constraint skips it.
  std::vector<uint8_t> group_end(static_cast<size_t>(n), 0), group_single(static_cast<size_t>(n), 0);
  {
    int at = 0;
    for (int g : group_sizes) {
      if (g <= 0 || at + g > n) fail("allocation: group sizes do not cover the {} items", n);
      at += g;
      group_end[at - 1] = 1;
      group_single[at - 1] = g == 1;
    }
    if (at != n) fail("allocation: group sizes cover {} of {} items", at, n);
  }
  // Indices of the widest and second-widest widths (the flags track them per group).
  std::vector<int> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return widths[a] > widths[b]; });
  if (top_two && m < 2) fail("allocation: the top-two constraint needs at least two candidate widths");
  const int widest = order[0], second = m > 1 ? order[1] : -1;
  auto w_of = [&](int i) { return weights.empty() ? int64_t{1} : weights[i]; };
  if (budget < 0) fail("allocation: negative budget {}", budget);
  const int64_t states = (budget + 1) * 4;
  if (static_cast<double>(states) * n > 4e8) fail("allocation: budget {} x {} items is too large for the exact solver", budget, n);

  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> dp(states, kInf), next(states);
  // parent[i][state] = chosen width index (low 8 bits) | previous flags << 8.
  std::vector<std::vector<int16_t>> parent(n, std::vector<int16_t>(states, -1));
  dp[0] = 0;  // budget 0, flags 0
  for (int i = 0; i < n; ++i) {
    std::fill(next.begin(), next.end(), kInf);
    const bool closes = group_end[i] != 0;
    const bool needs_top_two = top_two && !group_single[i];
    for (int64_t bsum = 0; bsum <= budget; ++bsum) {
      for (int f = 0; f < 4; ++f) {
        const double base = dp[bsum * 4 + f];
        if (base == kInf) continue;
        for (int j = 0; j < m; ++j) {
          const int64_t nb = bsum + widths[j] * w_of(i);
          if (nb > budget || !std::isfinite(cost[i][j])) continue;
          int nf = f | (j == widest ? 1 : 0) | (j == second ? 2 : 0);
          if (closes) {
            if (needs_top_two && nf != 3) continue;
            nf = 0;  // the next group starts with no flags
          }
          const double c = base + cost[i][j];
          if (c < next[nb * 4 + nf]) {
            next[nb * 4 + nf] = c;
            parent[i][nb * 4 + nf] = static_cast<int16_t>(j | (f << 8));
          }
        }
      }
    }
    dp.swap(next);
  }
  if (dp[budget * 4] == kInf) {
    fail("allocation: no assignment of widths reaches exactly {} bits{}", budget,
         top_two ? " with at least one expert at each of the two widest widths per layer" : "");
  }
  std::vector<int> choice(n);
  int64_t bsum = budget;
  int f = 0;
  for (int i = n - 1; i >= 0; --i) {
    const int16_t p = parent[i][bsum * 4 + f];
    choice[i] = p & 0xff;
    f = p >> 8;
    bsum -= widths[choice[i]] * w_of(i);
  }
  return choice;
}

namespace {

double cost_of(const CalibrationStats& s, const AllocOptions& o, int l, int e, int bits, std::mt19937_64& rng) {
  const LayerStats& L = s.layers[l];
  const ExpertStats& x = L.experts[e];
  auto measured = [&](const std::map<int, double>& m) {
    const auto it = m.find(bits);
    if (it == m.end()) {
      fail("allocation: the calibration statistics have no error for {}-bit (measured: {}); rerun calibrate with --candidates including {}",
           bits, fmt::join(s.candidates, ","), bits);
    }
    return it->second;
  };
  const double share_floor = o.freq_floor / static_cast<double>(L.experts.size());
  const double phi = std::max(L.phi(e), share_floor), w = std::max(L.w(e), share_floor);
  // ε sums the output error over the expert's routed tokens: with a floored share it is
  // scaled by the share it is now counted with. An expert no token reached has ε = 0 at
  // every width; it gets the layer's median error per unit of share instead.
  auto eps = [&]() {
    const double measured_eps = measured(x.eps);
    if (share_floor <= 0 || L.phi(e) >= share_floor) return measured_eps;
    if (L.phi(e) > 0) return measured_eps * phi / L.phi(e);
    std::vector<double> per_share;
    for (size_t o2 = 0; o2 < L.experts.size(); ++o2) {
      const double p = L.phi(static_cast<int>(o2));
      if (p > 0) per_share.push_back(measured(L.experts[o2].eps) / p);
    }
    if (per_share.empty()) return 0.0;
    std::nth_element(per_share.begin(), per_share.begin() + per_share.size() / 2, per_share.end());
    return per_share[per_share.size() / 2] * phi;
  };
  switch (o.method) {
    case AllocMethod::kPmq:
      return std::pow(phi, o.alpha) * std::pow(w, o.beta) * std::pow(eps(), o.gamma);
    case AllocMethod::kHessian: return measured(x.hawq);
    case AllocMethod::kFrequency:
      return std::pow(phi, o.alpha) * std::ldexp(1.0, -bits);
    case AllocMethod::kRandom: return std::uniform_real_distribution<double>(0, 1)(rng);
    case AllocMethod::kUniform: break;
  }
  return 0;
}

}  // namespace

namespace {

// An expert's cost at a width; allocate() solves with cost_of, the worst case with blends.
using CostFn = std::function<double(int layer, int expert, int bits)>;

BitPlan allocate_with(const CalibrationStats& s, const AllocOptions& o,
                      const std::vector<std::vector<int64_t>>& params, const CostFn& cost_fn) {
  std::vector<int> widths = o.candidates;
  std::sort(widths.begin(), widths.end());
  widths.erase(std::unique(widths.begin(), widths.end()), widths.end());
  if (widths.empty()) fail("--candidates: empty");
  for (int b : widths) {
    if ((b < 1 || b > 4) && b != 8) fail("--candidates: {} is not a supported width (1, 2, 3, 4 or 8)", b);
  }
  const int n_layer = static_cast<int>(s.layers.size());
  // Experts per layer differ after adaptive pruning or merging (mcmoe reduce).
  auto n_expert_of = [&](int l) { return static_cast<int>(s.layers[l].experts.size()); };
  BitPlan plan;
  plan.bits.resize(n_layer);
  for (int l = 0; l < n_layer; ++l) plan.bits[l].assign(n_expert_of(l), 0);
  if (o.method == AllocMethod::kUniform) {
    if (!o.layer_bits.empty())
      fail("--layer-bits needs an allocation (pmq, frequency, hessian or random), not uniform");
    const int b = static_cast<int>(std::lround(o.avg_bits));
    if (std::fabs(o.avg_bits - b) > 1e-9 || ((b < 1 || b > 4) && b != 8)) {
      fail("--bits {} with --alloc uniform: uniform allocation needs one of the widths 1, 2, 3, 4, 8", o.avg_bits);
    }
    for (auto& layer : plan.bits) std::fill(layer.begin(), layer.end(), b);
    return plan;
  }
  if (o.avg_bits < widths.front() || o.avg_bits > widths.back()) {
    fail("--bits {}: the average must lie within the candidate widths [{}, {}]", o.avg_bits, widths.front(),
         widths.back());
  }
  auto layer_costs = [&](int l) {
    std::vector<std::vector<double>> c(n_expert_of(l), std::vector<double>(widths.size()));
    for (int e = 0; e < n_expert_of(l); ++e) {
      for (size_t j = 0; j < widths.size(); ++j) c[e][j] = cost_fn(l, e, widths[j]);
    }
    return c;
  };
  auto solve = [&](const std::vector<std::vector<double>>& cost, int64_t budget,
                   const std::vector<int>& groups, const std::vector<int64_t>& weights,
                   double max_budget) {
    // The top-two constraint cannot hold at the widest average (every expert at the top) nor
    // at the narrowest (every expert at the bottom: --bits 2 with widths {2,3}); there it is
    // dropped, and said so.
    const double min_budget = max_budget * widths.front() / widths.back();
    const bool top_two =
        o.require_top_two && widths.size() >= 2 && budget < max_budget && budget > min_budget;
    if (o.require_top_two && !top_two && widths.size() >= 2) {
      plan.notes.push_back(
          fmt::format("budget equals the {} width: the at-least-one-at-each-of-the-two-widest "
                      "constraint was dropped",
                      budget >= max_budget ? "widest" : "narrowest"));
    }
    return solve_allocation_groups(cost, widths, budget, top_two, groups, weights);
  };
  if (o.global && !o.layer_bits.empty())
    fail("--layer-bits sets per-layer budgets: it takes no --global");
  // Each MoE layer's average: --layer-bits where given, else an equal share of the rest.
  std::vector<double> target(n_layer, o.avg_bits);
  if (!o.layer_bits.empty()) {
    double fixed_bits = 0, total = 0, rest_experts = 0;
    for (int l = 0; l < n_layer; ++l) total += n_expert_of(l);
    for (const auto& [l, b] : o.layer_bits) {
      if (l < 0 || l >= n_layer || n_expert_of(l) == 0) {
        fail("--layer-bits {}={}: layer {} is not a MoE layer of the statistics ({} layers)", l, b,
             l, n_layer);
      }
      fixed_bits += b * n_expert_of(l);
    }
    for (int l = 0; l < n_layer; ++l) {
      if (!o.layer_bits.contains(l)) rest_experts += n_expert_of(l);
    }
    const double rest =
        rest_experts > 0 ? (o.avg_bits * total - fixed_bits) / rest_experts : o.avg_bits;
    for (int l = 0; l < n_layer; ++l) {
      const auto it = o.layer_bits.find(l);
      target[l] = it != o.layer_bits.end() ? it->second : rest;
      if (n_expert_of(l) > 0 &&
          (target[l] < widths.front() - 1e-9 || target[l] > widths.back() + 1e-9)) {
        fail(
            "--layer-bits: layer {} would average {:.4f} bits, outside the candidate widths [{}, "
            "{}] (--bits {} over "
            "the model)",
            l, target[l], widths.front(), widths.back(), o.avg_bits);
      }
    }
    plan.notes.push_back(
        fmt::format("--layer-bits: the other MoE layers average {:.4f} bits", rest));
  }
  if (!o.global) {
    std::vector<std::pair<int, double>> noted;  // (expert count, width) roundings reported
    for (int l = 0; l < n_layer; ++l) {
      const int n_expert = n_expert_of(l);
      if (n_expert == 0) continue;  // a dense layer: nothing to allocate
      const double bits = std::clamp(target[l], double(widths.front()), double(widths.back()));
      const int64_t budget = std::llround(bits * n_expert);
      if (std::fabs(bits * n_expert - budget) > 1e-6 &&
          std::find(noted.begin(), noted.end(), std::pair{n_expert, bits}) == noted.end()) {
        noted.emplace_back(n_expert, bits);
        plan.notes.push_back(
            fmt::format("{} experts x {} bits is not whole: budget rounded to {} bits per layer "
                        "({:.4f} average)",
                        n_expert, bits, budget, double(budget) / n_expert));
      }
      const auto choice = solve(layer_costs(l), budget, {n_expert}, {}, double(widths.back()) * n_expert);
      for (int e = 0; e < n_expert; ++e) plan.bits[l][e] = widths[choice[e]];
    }
    return plan;
  }
  // Global: one budget over all experts, weighted by their parameter counts (divided by the
  // weights' gcd so the solver's table stays small; all experts of a model are usually equal).
  std::vector<std::vector<double>> cost;
  std::vector<int64_t> weights;
  std::vector<int> groups;
  for (int l = 0; l < n_layer; ++l) {
    if (n_expert_of(l) == 0) continue;  // a dense layer joins no group
    auto c = layer_costs(l);
    cost.insert(cost.end(), c.begin(), c.end());
    for (int e = 0; e < n_expert_of(l); ++e) weights.push_back(params.empty() ? 1 : params[l][e]);
    groups.push_back(n_expert_of(l));
  }
  if (cost.empty()) fail("allocation: the statistics hold no experts (no MoE layer)");
  int64_t g = 0;
  for (int64_t w : weights) g = std::gcd(g, w);
  int64_t total = 0;
  for (int64_t& w : weights) total += (w /= g);
  const int64_t budget = std::llround(o.avg_bits * total);
  const auto choice = solve(cost, budget, groups, weights, double(widths.back()) * total);
  size_t item = 0;
  for (int l = 0; l < n_layer; ++l) {
    for (int e = 0; e < n_expert_of(l); ++e) plan.bits[l][e] = widths[choice[item++]];
  }
  return plan;
}

// Σ over experts of a domain's cost at the plan's widths.
double plan_cost(const CalibrationStats& s, const AllocOptions& o, const BitPlan& plan) {
  std::mt19937_64 unused(o.seed);
  double total = 0;
  for (size_t l = 0; l < plan.bits.size(); ++l) {
    for (size_t e = 0; e < plan.bits[l].size(); ++e)
      total += cost_of(s, o, static_cast<int>(l), static_cast<int>(e), plan.bits[l][e], unused);
  }
  return total;
}

}  // namespace

BitPlan allocate(const CalibrationStats& s, const AllocOptions& o,
                 const std::vector<std::vector<int64_t>>& params) {
  std::mt19937_64 rng(o.seed);
  return allocate_with(s, o, params,
                       [&](int l, int e, int bits) { return cost_of(s, o, l, e, bits, rng); });
}

WorstCasePlan allocate_worst_case(const std::vector<const CalibrationStats*>& domains,
                                  const AllocOptions& o,
                                  const std::vector<std::vector<int64_t>>& params, int rounds) {
  if (domains.empty()) fail("worst-case allocation: no statistics");
  if (o.method != AllocMethod::kPmq && o.method != AllocMethod::kFrequency &&
      o.method != AllocMethod::kHessian)
    fail("worst-case allocation needs a measured cost (pmq, frequency or hessian), not {}",
         alloc_method_name(o.method));
  const CalibrationStats& shape = *domains.front();
  for (size_t d = 1; d < domains.size(); ++d) {
    const CalibrationStats& s = *domains[d];
    bool same = s.layers.size() == shape.layers.size();
    for (size_t l = 0; same && l < s.layers.size(); ++l)
      same = s.layers[l].experts.size() == shape.layers[l].experts.size();
    if (!same)
      fail("worst-case allocation: statistics {} have other layers or expert counts than the first",
           d + 1);
  }
  const size_t n = domains.size();
  WorstCasePlan best;
  // Each domain's own optimum, the unit its regret is measured in.
  std::vector<BitPlan> own(n);
  for (size_t d = 0; d < n; ++d) {
    own[d] = allocate(*domains[d], o, params);
    best.own_cost.push_back(plan_cost(*domains[d], o, own[d]));
    if (!(best.own_cost[d] > 0))
      fail("worst-case allocation: statistics {} give every plan zero cost", d + 1);
  }
  auto regrets_of = [&](const BitPlan& p) {
    std::vector<double> r(n);
    for (size_t d = 0; d < n; ++d) r[d] = plan_cost(*domains[d], o, p) / best.own_cost[d];
    return r;
  };
  auto consider = [&](const BitPlan& p) {
    const std::vector<double> r = regrets_of(p);
    const double worst = *std::max_element(r.begin(), r.end());
    if (best.regret.empty() ||
        worst < *std::max_element(best.regret.begin(), best.regret.end()) - 1e-12) {
      best.plan = p;
      best.regret = r;
    }
    return r;
  };
  for (const BitPlan& p : own) consider(p);
  // Multiplicative weights on the domains: each round solves the exact allocation of the
  // weighted sum of the domains' normalised costs, then shifts weight to the domains that
  // plan serves worst. A plan of a weighted sum is the best answer to that mix; the best plan
  // seen by its worst regret is kept (the minimax over plans is not convex, so the mix's
  // plans bracket it rather than reach it).
  std::vector<double> lambda(n, 1.0 / static_cast<double>(n));
  const double eta = 8.0;
  std::mt19937_64 unused(o.seed);  // cost_of's random stream; the measured costs ignore it
  for (int round = 0; round < rounds; ++round) {
    const BitPlan p = allocate_with(shape, o, params, [&](int l, int e, int bits) {
      double c = 0;
      for (size_t d = 0; d < n; ++d)
        c += lambda[d] * cost_of(*domains[d], o, l, e, bits, unused) / best.own_cost[d];
      return c;
    });
    const std::vector<double> r = consider(p);
    double sum = 0;
    for (size_t d = 0; d < n; ++d) sum += lambda[d] *= std::exp(eta * (r[d] - 1));
    for (double& x : lambda) x /= sum;
  }
  // Then swaps: two experts of one layer (and one size) trade widths when that lowers the
  // worst regret. A swap keeps the budget and each width's count, so every constraint holds;
  // it finishes at a plan no single swap improves, which the mixes alone often miss.
  std::vector<double> total(n);
  for (size_t d = 0; d < n; ++d) total[d] = best.regret[d] * best.own_cost[d];
  auto cost = [&](size_t d, int l, int e, int bits) {
    return cost_of(*domains[d], o, l, e, bits, unused);
  };
  auto worst_after = [&](const std::vector<double>& delta) {
    double w = 0;
    for (size_t d = 0; d < n; ++d) w = std::max(w, (total[d] + delta[d]) / best.own_cost[d]);
    return w;
  };
  std::vector<double> delta(n);
  double current = worst_after(std::vector<double>(n, 0.0));
  for (bool improved = true; improved;) {
    improved = false;
    for (size_t l = 0; l < best.plan.bits.size(); ++l) {
      std::vector<int>& bits = best.plan.bits[l];
      const int li = static_cast<int>(l);
      for (int i = 0; i < static_cast<int>(bits.size()); ++i) {
        for (int k = i + 1; k < static_cast<int>(bits.size()); ++k) {
          if (bits[i] == bits[k] || (!params.empty() && params[l][i] != params[l][k])) continue;
          for (size_t d = 0; d < n; ++d) {
            delta[d] = cost(d, li, i, bits[k]) + cost(d, li, k, bits[i]) - cost(d, li, i, bits[i]) -
                       cost(d, li, k, bits[k]);
          }
          const double after = worst_after(delta);
          if (after < current * (1 - 1e-12)) {
            std::swap(bits[i], bits[k]);
            for (size_t d = 0; d < n; ++d) total[d] += delta[d];
            current = after;
            improved = true;
          }
        }
      }
    }
  }
  for (size_t d = 0; d < n; ++d) best.regret[d] = total[d] / best.own_cost[d];
  return best;
}

}  // namespace mcmoe::compress
