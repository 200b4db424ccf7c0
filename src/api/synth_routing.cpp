#include "api/synth_routing.h"

#include <cmath>

#include "core/error.h"

namespace mcmoe::api {

float SynthRouting::router_scale(int l) const { return std::sqrt(1.f + 2.f * static_cast<float>(l)) / feature_scale; }

SynthRouting plan_routing(const offload::RoutingTrace& t, int vocab, float noise, uint64_t seed) {
  if (t.n_tokens() == 0) fail("synth --routing-from: the trace has no tokens");
  SynthRouting r;
  r.traced_layers = t.n_layer;
  r.n_expert = t.n_expert;
  r.noise = noise;
  const int nf = r.n_features();
  std::vector<double> sum(static_cast<size_t>(vocab) * nf, 0.0);
  std::vector<int64_t> seen(vocab, 0);
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    const int32_t v = t.tokens[i];
    if (v < 0 || v >= vocab) fail("synth --routing-from: trace token id {} outside the vocabulary of {}", v, vocab);
    ++seen[v];
    for (int l = 0; l < t.n_layer; ++l) {
      const auto p = t.prob(i, l);
      for (int e = 0; e < t.n_expert; ++e) sum[static_cast<size_t>(v) * nf + l * t.n_expert + e] += std::log(p[e] + 1e-9);
    }
  }
  std::vector<int32_t> seen_ids;
  for (int v = 0; v < vocab; ++v) {
    if (seen[v]) seen_ids.push_back(v);
  }
  r.token_features.assign(static_cast<size_t>(vocab) * nf, 0.f);
  for (int v = 0; v < vocab; ++v) {
    uint64_t h = (static_cast<uint64_t>(v) + 1) * 0x9e3779b97f4a7c15ull ^ seed;
    h ^= h >> 31;
    const int32_t src = seen[v] ? v : seen_ids[h % seen_ids.size()];
    for (int l = 0; l < t.n_layer; ++l) {
      // Centred mean log-probability: the router's softmax ignores a common offset.
      double mean = 0;
      for (int e = 0; e < t.n_expert; ++e) mean += sum[static_cast<size_t>(src) * nf + l * t.n_expert + e] / seen[src];
      mean /= t.n_expert;
      for (int e = 0; e < t.n_expert; ++e) {
        const double lp = sum[static_cast<size_t>(src) * nf + l * t.n_expert + e] / seen[src];
        r.token_features[static_cast<size_t>(v) * nf + l * t.n_expert + e] = static_cast<float>(r.feature_scale * (lp - mean) / 4.0);
      }
    }
  }
  return r;
}

}  // namespace mcmoe::api
