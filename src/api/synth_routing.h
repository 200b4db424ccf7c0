#pragma once
// Making a large random-weight model route like a real one. Random routers route every
// token uniformly, which makes any expert cache look useless (or, with a repeated token,
// perfect). Here each token's embedding carries a small block of "routing features" — for
// every traced layer and expert, that token's mean log routing probability in a recorded
// trace (`mcmoe trace`) — and each synthetic router reads only its traced layer's block.
// Layers never write into the feature block except for a controlled amount of noise, so
// the synthetic model keeps the trace's skew (popular experts), its cross-layer structure
// (per-token choices in every layer) and, fed the same text, its temporal locality; the
// noise makes next-layer prediction imperfect, as it is in a real model.
//
// Wider and deeper than the trace. A synthetic layer with `copies` times the trace's experts
// splits each traced expert e into copies e, e + E, e + 2E, ...: every token is assigned one
// copy of every traced expert by a hash of (token id, traced layer, e), carried as a one-hot
// "copy feature" that adds copy_margin to that copy's router logit. The synthetic router's
// top-k is then the trace's top-k with each pick sent to the token's copy, so each copy gets
// about 1/copies of its traced expert's tokens, popularity and per-token structure are kept,
// and a repeated token repeats its copies (temporal locality). A synthetic model deeper than
// the trace either stretches the traced layers over its depth (blocks of adjacent layers
// imitate the same traced layer: their routing then differs only by the noise, which makes
// the next layer unrealistically easy to predict) or cycles through them (layer l imitates
// traced layer l mod T, so adjacent layers keep the trace's adjacent-layer relation except at
// each wrap from the last traced layer to the first).
#include <cstdint>
#include <vector>

#include "offload/trace.h"

namespace mcmoe::api {

enum class RoutingLayerMap { kStretch, kCycle };

struct SynthRouting {
  int traced_layers = 0, traced_experts = 0;
  int copies = 1;  // synthetic experts per traced expert
  RoutingLayerMap layer_map = RoutingLayerMap::kStretch;
  float feature_scale = 4.f;  // magnitude of the features in the embedding
  float noise = 0.3f;         // scale of what each layer writes into the feature block
  float copy_margin = 8.f;    // router logit the token's copy of a traced expert gains
  uint64_t seed = 0;
  std::vector<float> token_features;  // [vocab][n_features]

  int n_expert() const { return traced_experts * copies; }
  // The mean log-probability block [traced layer][traced expert], then with copies > 1 the
  // one-hot copy block [traced layer][traced expert][copy].
  int n_features() const { return traced_layers * traced_experts * (copies > 1 ? 1 + copies : 1); }
  int base_feature(int tl, int e) const { return tl * traced_experts + e; }
  int copy_feature(int tl, int e, int c) const {
    return traced_layers * traced_experts + (tl * traced_experts + e) * copies + c;
  }
  // The copy of traced expert e (of traced layer tl) that token v is sent to.
  int copy_of(int32_t v, int tl, int e) const;
  // The traced layer synthetic layer l (of n) imitates.
  int traced_layer(int l, int n) const;
  // Router weight on the feature of (traced layer, expert) for synthetic layer l: undoes the
  // growth of the residual's RMS with depth (√(1 + 2l) for unit-variance random layers).
  float router_scale(int l) const;
  // Synthetic layer l's (of n) router row for its expert j (cols = the hidden size).
  void router_row(int l, int n, int j, float* row, int64_t cols) const;
};

// Features for every token id < vocab from the trace, for `copies` synthetic experts per
// traced one; ids the trace never saw borrow the features of a seen token (picked by hash),
// so the expert popularity stays that of the trace.
SynthRouting plan_routing(const offload::RoutingTrace& t, int vocab, int copies,
                          RoutingLayerMap layer_map, float noise, uint64_t seed);

}  // namespace mcmoe::api
