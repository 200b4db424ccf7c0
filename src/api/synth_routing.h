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
#include <cstdint>
#include <vector>

#include "offload/trace.h"

namespace mcmoe::api {

struct SynthRouting {
  int traced_layers = 0, n_expert = 0;
  int n_features() const { return traced_layers * n_expert; }
  float feature_scale = 4.f;   // magnitude of the features in the embedding
  float noise = 0.3f;          // scale of what each layer writes into the feature block
  std::vector<float> token_features;  // [vocab][n_features]
  // The traced layer synthetic layer l (of n) imitates.
  int traced_layer(int l, int n) const { return static_cast<int>(static_cast<int64_t>(l) * traced_layers / n); }
  // Router weight on the feature of (traced layer, expert) for synthetic layer l: undoes the
  // growth of the residual's RMS with depth (√(1 + 2l) for unit-variance random layers).
  float router_scale(int l) const;
};

// Features for every token id < vocab from the trace; ids the trace never saw borrow the
// features of a seen token (picked by hash), so the expert popularity stays that of the trace.
SynthRouting plan_routing(const offload::RoutingTrace& t, int vocab, float noise, uint64_t seed);

}  // namespace mcmoe::api
