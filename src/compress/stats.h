#pragma once
// What `mcmoe calibrate` measures and `mcmoe quantize` consumes: per layer and expert the
// routing statistics and reconstruction errors of MC-MoE's bit allocation (ALGORITHMS.md §1),
// the p_j / p_1 distribution for ODP thresholds (§2), and Hessian traces for the
// Hessian-trace baseline. Stored as JSON with a fingerprint of the model it came from.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/model.h"

namespace mcmoe::compress {

inline constexpr int kStatsVersion = 1;

// Identifies a model's MoE structure and router weights, so stats from another model (or
// from this model after merging/pruning) are rejected rather than silently misapplied.
struct ModelFingerprint {
  std::string arch;
  int n_layer = 0, n_expert = 0, n_expert_used = 0;
  int64_t n_embd = 0, n_ff = 0;
  // FNV-1a over every router's weights, router bias and selection bias as f32, and merged
  // models' expert maps.
  std::string router_hash;
  // Experts per layer where layers differ (a reduced model; dense layers, which have 0);
  // empty: n_expert everywhere.
  std::vector<int> layer_experts;
  bool operator==(const ModelFingerprint&) const = default;
};
ModelFingerprint fingerprint(const model::Model& m);
std::string describe(const ModelFingerprint& f);

struct ExpertStats {
  int64_t picks = 0;       // (token, top-k slot) picks: φ before normalisation
  double mass = 0;         // Σ softmax probability over its picks, before top-k renormalisation
  double in_sq = 0;        // Σ ‖x‖² over routed rows = trace(XᵀX) of gate/up's input
  double hidden_sq = 0;    // Σ ‖silu(gate x) · up x‖² = trace of down's input Gram matrix
  std::map<int, double> eps;       // bits → ε_{e,b} = Σ_samples ‖Z − Z_q‖_F (RTN, this expert only)
  std::map<int, double> hawq;      // bits → Σ_proj trace(H)/cols · ‖W − Q_b(W)‖²_F (RTN)
};

// A dense layer's statistics are empty (no experts, no tokens routed, no ratios).
struct LayerStats {
  std::vector<ExpertStats> experts;
  int64_t tokens = 0;
  // ratio_quantiles[j - 1][q] = q-th percentile (q = 0..100) of p_{j} / p_{1} over tokens,
  // for top-k slots j = 2..k (probabilities as routed, best first).
  std::vector<std::vector<float>> ratio_quantiles;
  // Normalised factors of the integer program (Σ_e = 1 within the layer).
  double phi(int e) const;
  double w(int e) const;
};

struct CalibrationStats {
  int version = kStatsVersion;
  ModelFingerprint model;
  std::string text;          // calibration text path
  int samples = 0, seq = 0;
  int64_t group = 128;       // RTN group for ε
  std::vector<int> candidates;  // bits for which ε was measured
  std::vector<LayerStats> layers;
};

void save_stats(const CalibrationStats& s, const std::string& path);  // temp file + rename
CalibrationStats load_stats(const std::string& path);
// Fails with both descriptions when `s` was not measured on `m`.
void check_stats_match(const CalibrationStats& s, const model::Model& m, const std::string& stats_path);

}  // namespace mcmoe::compress
