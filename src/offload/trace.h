#pragma once
// A routing trace: for every token and layer, the experts the router picked, their
// weights, the full routing distribution and the predictions the next layers' routers made
// from the residual after that layer. `mcmoe trace` records one; `mcmoe cachesim` replays it
// against cache policies and budgets; `mcmoe synth --routing-from` builds a large synthetic
// model that routes like the traced one.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "offload/predictor.h"

namespace mcmoe::offload {

// Every layer has a row per token; a dense layer (no router, no routed experts: DeepSeek's and
// GLM's first layers) has no routing events, so its row holds no picks (-1), zero
// probabilities, and no predictions aim at it.
struct RoutingTrace {
  std::string model;  // path of the traced model, for the record
  int n_layer = 0, n_expert = 0, k = 0;  // n_expert: the most experts any layer stores
  // [n_layer] experts each layer stores (0: dense; fewer than n_expert: mcmoe reduce);
  // empty: n_expert in every layer.
  std::vector<int> layer_experts;
  int depth = 0, m = 0;                // predictions: `depth` layers ahead, top-m each
  std::vector<uint64_t> expert_bytes;  // [n_layer * n_expert] bytes the live cache charges (expert_cache_bytes)
  std::vector<int32_t> tokens;         // [n_tokens]
  std::vector<int16_t> picks;          // [n_tokens][n_layer][k], best first, -1 = none
  std::vector<float> weights;          // [n_tokens][n_layer][k] as applied
  std::vector<float> probs;            // [n_tokens][n_layer][n_expert]
  // [n_tokens][n_layer][depth][m] for layer l+1+j; -1 past the end, for a dense layer, and
  // beyond the experts the layer's router can choose (RoutePredictor::predict)
  std::vector<int16_t> predicted;

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int experts_in(int l) const { return layer_experts.empty() ? n_expert : layer_experts[l]; }
  std::span<const int16_t> pick(int64_t t, int l) const {
    return {picks.data() + (t * n_layer + l) * k, static_cast<size_t>(k)};
  }
  std::span<const float> prob(int64_t t, int l) const {
    return {probs.data() + (t * n_layer + l) * n_expert, static_cast<size_t>(n_expert)};
  }
  // Layer l + ahead's top-m as predicted after layer l (ahead in 1..depth).
  std::span<const int16_t> prediction(int64_t t, int l, int ahead) const {
    return {predicted.data() + ((t * n_layer + l) * depth + (ahead - 1)) * m, static_cast<size_t>(m)};
  }
};

struct TraceOptions {
  int ctx = 512;      // tokens per window; the cache of a session is reset between windows
  int depth = 2;      // predictions this many layers ahead
  int m = 4;          // top-m predicted per layer
  int threads = 2;
  int64_t max_tokens = 0;  // 0: all
  int fit =
      0;  // predictions from routers refitted every this many tokens (RoutePredictor::enable_fit)
  RoutePredictor::FitInput fit_input = RoutePredictor::FitInput::kResidual;
  std::function<void(size_t, size_t)> progress;
};

// Runs the model over `tokens` (windows of ctx) and records routing and predictions.
RoutingTrace record_trace(model::Model& m, std::span<const int32_t> tokens, const TraceOptions& o);

void write_trace(const RoutingTrace& t, const std::string& path);  // atomic
RoutingTrace read_trace(const std::string& path);  // throws Error naming the path and line

}  // namespace mcmoe::offload
