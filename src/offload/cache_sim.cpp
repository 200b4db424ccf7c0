#include "offload/cache_sim.h"

#include <algorithm>

#include "core/error.h"
#include "offload/resident_set.h"

namespace mcmoe::offload {

namespace {

// Distinct experts of one (token, layer), ascending.
void used_experts(const RoutingTrace& t, int64_t tok, int l, std::vector<int>& out) {
  out.clear();
  for (int16_t e : t.pick(tok, l)) {
    if (e >= 0 && std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
}

}  // namespace

PredictionQuality prediction_quality(const RoutingTrace& t, int ahead, int m) {
  if (ahead < 1 || ahead > t.depth) fail("trace has predictions 1..{} layers ahead, {} asked", t.depth, ahead);
  if (m < 1 || m > t.m) fail("trace has top-{} predictions, top-{} asked", t.m, m);
  int64_t used = 0, guessed = 0, right = 0;
  std::vector<int> u;
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    for (int l = 0; l + ahead < t.n_layer; ++l) {
      used_experts(t, i, l + ahead, u);
      const auto p = t.prediction(i, l, ahead);
      for (int j = 0; j < m; ++j) {
        if (p[j] < 0) continue;
        ++guessed;
        if (std::find(u.begin(), u.end(), p[j]) != u.end()) ++right;
      }
      used += static_cast<int64_t>(u.size());
    }
  }
  return {.recall = used ? static_cast<double>(right) / used : 0, .precision = guessed ? static_cast<double>(right) / guessed : 0};
}

SimResult simulate(const RoutingTrace& t, const SimOptions& o) {
  const int n_ids = t.n_layer * t.n_expert;
  if (o.prefetch_depth < 0 || o.prefetch_depth > t.depth) {
    fail("cachesim: prefetch depth {} but the trace has predictions 1..{} layers ahead", o.prefetch_depth, t.depth);
  }
  if (o.prefetch_depth > 0 && (o.prefetch_m < 1 || o.prefetch_m > t.m)) {
    fail("cachesim: prefetch top-{} but the trace has top-{} predictions", o.prefetch_m, t.m);
  }
  const int64_t first = std::clamp<int64_t>(o.seed_tokens, 0, t.n_tokens());
  std::vector<int> used;
  auto step_of = [&](int64_t tok, int l) { return static_cast<uint64_t>(tok) * t.n_layer + l; };
  std::unique_ptr<CachePolicy> policy;
  if (o.policy == "belady") {
    std::vector<std::vector<uint64_t>> uses(n_ids);
    for (int64_t i = first; i < t.n_tokens(); ++i) {
      for (int l = 0; l < t.n_layer; ++l) {
        used_experts(t, i, l, used);
        for (int e : used) uses[l * t.n_expert + e].push_back(step_of(i, l));
      }
    }
    policy = make_belady(std::move(uses));
  } else if (o.policy.ends_with("-seeded")) {
    // Counts of the skipped prefix stand in for calibration statistics (--cache-seed).
    std::vector<double> seed(n_ids, 0.0);
    for (int64_t i = 0; i < first; ++i) {
      for (int l = 0; l < t.n_layer; ++l) {
        used_experts(t, i, l, used);
        for (int e : used) seed[l * t.n_expert + e] += 1.0;
      }
    }
    policy = make_policy(o.policy.substr(0, o.policy.size() - 7), t.n_layer, t.n_expert, seed);
  } else {
    policy = make_policy(o.policy, t.n_layer, t.n_expert);
  }
  ResidentSet cache = ResidentSet::make(t.expert_bytes, t.n_expert, o.budget, o.per_layer);

  SimResult r;
  r.label = o.policy + (o.per_layer ? "/per-layer" : "") + (o.prefetch_depth > 0 ? "+prefetch" : "");
  std::vector<int64_t> layer_hits(t.n_layer, 0), layer_access(t.n_layer, 0);
  std::vector<uint8_t> pinned(n_ids, 0);
  // Prefetched and not yet reached: protected from eviction until its layer has run, so
  // one prefetch does not evict another made for a nearer layer.
  std::vector<int64_t> protect_until(n_ids, -1);
  std::vector<int> evicted, ids;
  uint64_t bytes_read = 0;
  for (int64_t i = first; i < t.n_tokens(); ++i) {
    for (int l = 0; l < t.n_layer; ++l) {
      const uint64_t clock = step_of(i, l);
      used_experts(t, i, l, used);
      if (!used.empty()) {
        ids.clear();
        for (int e : used) ids.push_back(l * t.n_expert + e);
        policy->begin_step(l, ids, clock);
      }
      for (int e : used) pinned[l * t.n_expert + e] = 1;
      auto evictable = [&](int id) { return !pinned[id] && protect_until[id] < static_cast<int64_t>(clock); };
      for (int e : used) {
        const int id = l * t.n_expert + e;
        ++r.accesses;
        ++layer_access[l];
        if (cache.resident(id)) {
          ++r.hits;
          ++layer_hits[l];
          if (protect_until[id] >= static_cast<int64_t>(clock)) ++r.useful_prefetches;
        } else {
          bytes_read += cache.size(id);
          evicted.clear();
          // Budget below one layer's working set: the expert streams through without staying.
          if (cache.make_room(id, *policy, clock, evictable, evicted)) cache.insert(id);
        }
        protect_until[id] = -1;
        policy->on_use(id, clock);
      }
      for (int e : used) pinned[l * t.n_expert + e] = 0;
      // The routers' guesses for this token's next layers, top-k, as hints (no read).
      for (int a = 1; a <= std::min(t.depth, policy->hint_depth()) && l + a < t.n_layer; ++a) {
        const auto p = t.prediction(i, l, a);
        ids.clear();
        for (int j = 0; j < std::min(t.k, t.m); ++j) {
          if (p[j] >= 0) ids.push_back((l + a) * t.n_expert + p[j]);
        }
        policy->hint(l + a, a, ids);
      }
      for (int a = 1; a <= o.prefetch_depth && l + a < t.n_layer; ++a) {
        const auto p = t.prediction(i, l, a);
        for (int j = 0; j < o.prefetch_m; ++j) {
          if (p[j] < 0) continue;
          const int id = (l + a) * t.n_expert + p[j];
          if (cache.resident(id)) continue;
          evicted.clear();
          if (!cache.make_room(id, *policy, clock, evictable, evicted)) continue;
          cache.insert(id);
          policy->on_prefetch(id, clock);
          protect_until[id] = static_cast<int64_t>(step_of(i, l + a));
          bytes_read += cache.size(id);
          ++r.prefetches;
        }
      }
    }
  }
  r.tokens = t.n_tokens() - first;
  r.bytes_read_per_token = r.tokens ? static_cast<double>(bytes_read) / r.tokens : 0;
  for (int l = 0; l < t.n_layer; ++l) {
    r.layer_hit_rate.push_back(layer_access[l] ? static_cast<double>(layer_hits[l]) / layer_access[l] : 0);
  }
  return r;
}

}  // namespace mcmoe::offload
