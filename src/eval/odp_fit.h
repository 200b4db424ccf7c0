#pragma once
// ODP as a dial (issue 16, item 5): per-layer pruning thresholds chosen on calibration text
// so that the predicted KL increase stays within a budget.
//
// MC-MoE's rule drops a token's j-th expert when its routing weight is below mu_j times the
// first's; the paper takes mu from the median ratio, which on mixtral-tiny prunes 24% of
// activations and triples the KL of a 2.5-bit model. Here, for every MoE layer and every
// candidate quantile q of that layer's measured ratios (mu = the q-quantile, so about a
// share q of the layer's j-th picks is dropped), ODP is switched on in that layer alone and
// the KL to the same model without ODP measured on the windows. Assuming the layers' KL
// increases add, a knapsack over layers then picks one quantile (or none) per layer that
// prunes the most activations within the budget. Costs 1 + layers × quantiles forward
// passes over the windows.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/model.h"

namespace mcmoe::eval {

struct OdpFitOptions {
  double kl_budget = 0.001;  // predicted mean KL increase per token, nats
  std::vector<double> quantiles{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  double protect_fraction = 0.02;  // as --odp-protect: the top prefill tokens kept whole
  int threads = 2;
  std::function<void(int64_t done, int64_t total)> progress;
};

struct OdpFitLayer {
  int layer = 0;
  std::vector<std::vector<float>> mu;  // [quantiles][k - 1]: the thresholds tried
  std::vector<double> kl;              // [quantiles]: mean KL increase with ODP in this layer only
  std::vector<double> pruned;          // [quantiles]: share of the layer's activations dropped
  int64_t picks = 0;                   // the layer's expert activations over the windows
  int chosen = -1;                     // index into quantiles; -1: ODP off in this layer
};

struct OdpFitResult {
  std::vector<OdpFitLayer> layers;  // the MoE layers
  std::vector<double> quantiles;
  double predicted_kl = 0;      // Σ of the chosen layers' KL increases
  double predicted_pruned = 0;  // share of all activations the chosen thresholds drop
};

// windows: token sequences, BOS first, each at most the model's context.
OdpFitResult fit_odp(model::Model& m, std::span<const std::vector<int32_t>> windows,
                     const OdpFitOptions& o);

// The knapsack alone: for each layer one option (index into cost[l], or -1 for none) that
// maximises Σ value within Σ cost <= budget. Costs are clipped at 0 (a measured decrease is
// noise) and rounded up to budget / 4096 steps, so the result never exceeds the budget.
std::vector<int> choose_within_budget(const std::vector<std::vector<double>>& cost,
                                      const std::vector<std::vector<double>>& value, double budget);

}  // namespace mcmoe::eval
