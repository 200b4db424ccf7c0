#include "api/synth_routing.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mcmoe::api {

namespace {
uint64_t mix(uint64_t h) {
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}
}  // namespace

float SynthRouting::router_scale(int l) const { return std::sqrt(1.f + 2.f * static_cast<float>(l)) / feature_scale; }

int SynthRouting::traced_layer(int l, int n) const {
  if (layer_map == RoutingLayerMap::kCycle) return l % traced_layers;
  return static_cast<int>(static_cast<int64_t>(l) * traced_layers / n);
}

int SynthRouting::copy_of(int32_t v, int tl, int e) const {
  if (copies == 1) return 0;
  const uint64_t key = (static_cast<uint64_t>(v) << 32) ^ (static_cast<uint64_t>(tl) << 16) ^
                       static_cast<uint64_t>(e);
  return static_cast<int>(mix(key ^ mix(seed + 0x51ed27u)) % static_cast<uint64_t>(copies));
}

void SynthRouting::router_row(int l, int n, int j, float* row, int64_t cols) const {
  std::fill_n(row, cols, 0.f);
  const int tl = traced_layer(l, n), e = j % traced_experts, c = j / traced_experts;
  row[base_feature(tl, e)] = router_scale(l);
  // The copy feature is 1 in the embedding (so the one-hot block adds little to the residual's
  // norm); its weight turns that into copy_margin nats, in the base features' units.
  if (copies > 1) row[copy_feature(tl, e, c)] = router_scale(l) * copy_margin;
}

SynthRouting plan_routing(const offload::RoutingTrace& t, int vocab, int copies,
                          RoutingLayerMap layer_map, float noise, uint64_t seed) {
  if (t.n_tokens() == 0) fail("synth --routing-from: the trace has no tokens");
  if (copies < 1) fail("synth --routing-from: {} copies per traced expert", copies);
  SynthRouting r;
  r.traced_layers = t.n_layer;
  r.traced_experts = t.n_expert;
  r.copies = copies;
  r.layer_map = layer_map;
  r.noise = noise;
  r.seed = seed;
  const int nb = t.n_layer * t.n_expert;  // mean log-probabilities, summed per token id
  std::vector<double> sum(static_cast<size_t>(vocab) * nb, 0.0);
  std::vector<int64_t> seen(vocab, 0);
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    const int32_t v = t.tokens[i];
    if (v < 0 || v >= vocab) fail("synth --routing-from: trace token id {} outside the vocabulary of {}", v, vocab);
    ++seen[v];
    for (int l = 0; l < t.n_layer; ++l) {
      const auto p = t.prob(i, l);
      for (int e = 0; e < t.n_expert; ++e)
        sum[static_cast<size_t>(v) * nb + l * t.n_expert + e] += std::log(p[e] + 1e-9);
    }
  }
  std::vector<int32_t> seen_ids;
  for (int v = 0; v < vocab; ++v) {
    if (seen[v]) seen_ids.push_back(v);
  }
  const int nf = r.n_features();
  r.token_features.assign(static_cast<size_t>(vocab) * nf, 0.f);
  for (int v = 0; v < vocab; ++v) {
    uint64_t h = (static_cast<uint64_t>(v) + 1) * 0x9e3779b97f4a7c15ull ^ seed;
    h ^= h >> 31;
    const int32_t src = seen[v] ? v : seen_ids[h % seen_ids.size()];
    float* f = r.token_features.data() + static_cast<size_t>(v) * nf;
    for (int l = 0; l < t.n_layer; ++l) {
      // Centred mean log-probability: the router's softmax ignores a common offset.
      double mean = 0;
      for (int e = 0; e < t.n_expert; ++e)
        mean += sum[static_cast<size_t>(src) * nb + l * t.n_expert + e] / seen[src];
      mean /= t.n_expert;
      for (int e = 0; e < t.n_expert; ++e) {
        const double lp = sum[static_cast<size_t>(src) * nb + l * t.n_expert + e] / seen[src];
        f[r.base_feature(l, e)] = static_cast<float>(r.feature_scale * (lp - mean) / 4.0);
        // Copies follow the token itself (not src), so unseen ids still spread over copies.
        if (copies > 1) f[r.copy_feature(l, e, r.copy_of(v, l, e))] = 1.f;
      }
    }
  }
  return r;
}

}  // namespace mcmoe::api
