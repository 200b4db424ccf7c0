#pragma once
// What expert reduction measures per layer in one calibration pass of the original model:
// routing frequency, REAP saliency, the router-logit Gram matrix (M-SMoE similarity) and,
// for clustering, the MoE block inputs of a bounded number of tokens (every expert's mean
// output is computed from them afterwards, over all of those tokens, not only routed ones).
#include <cstdint>
#include <vector>

#include "model/observer.h"

namespace mcmoe::compress {

struct LayerReduceStats {
  std::vector<int64_t> picks;        // [n_expert] top-k picks (the activation frequency)
  std::vector<double> reap_sum;      // [n_expert] Σ over routed rows of gate · ‖expert output‖₂
  std::vector<double> router_gram;   // [n_expert²] Σ_t z_t z_tᵀ of the router logits
  std::vector<float> block_inputs;   // [rows, n_embd] MoE block inputs (when asked for)
  // REAP: mean over the tokens routed to e of gate_e(x) · ‖E_e(x)‖₂; 0 when never routed.
  double reap(int e) const { return picks[e] > 0 ? reap_sum[e] / static_cast<double>(picks[e]) : 0.0; }
  std::vector<double> reap_scores() const;
  std::vector<double> frequencies() const;  // picks / Σ picks
};

class ReduceCollector final : public model::ForwardObserver {
 public:
  // inputs_per_sample: MoE block input rows to keep from each sample's pass, at evenly
  // spaced positions after the BOS (0: none), so the kept rows spread over all samples.
  ReduceCollector(int n_expert, int64_t n_embd, int64_t inputs_per_sample);
  const LayerReduceStats& stats() const { return stats_; }
  LayerReduceStats take() { return std::move(stats_); }

  void on_routing(const model::RoutingEvent& e) override;
  void on_expert(const model::ExpertEvent& e) override;
  void on_tensor(std::string_view name, int layer, const float* data, int64_t rows, int64_t cols) override;

 private:
  int n_expert_;
  int64_t n_embd_, inputs_per_sample_;
  LayerReduceStats stats_;
};

}  // namespace mcmoe::compress
