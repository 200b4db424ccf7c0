#pragma once
// Replays a routing trace against an expert cache: same policies and budget rule as the
// live cache (offload/cache_policy.h, resident_set.h), at a cost of microseconds per token.
#include <cstdint>
#include <string>
#include <vector>

#include "offload/trace.h"

namespace mcmoe::offload {

struct SimOptions {
  // A live policy's name (make_policy), or NAME-seeded (its counts seeded from the skipped
  // prefix, standing in for calibration statistics), or belady.
  std::string policy = "lru";
  uint64_t budget = 0;         // bytes
  bool per_layer = false;      // one pool per layer instead of one global pool
  int prefetch_depth = 0;      // 0: no prefetch; else prefetch predictions 1..depth layers ahead
  int prefetch_m = 2;          // top-m predicted experts prefetched per layer
  // Replay starts at this token for every policy, so lines with and without a seed compare;
  // NAME-seeded counts the uses in the tokens before it.
  int64_t seed_tokens = 0;
};

struct SimResult {
  std::string label;        // e.g. "lru+prefetch"
  int64_t tokens = 0;       // tokens replayed
  int64_t accesses = 0;     // expert uses (distinct experts per token and layer)
  int64_t hits = 0;         // of which resident when needed (prefetched ones included)
  std::vector<double> layer_hit_rate;  // [n_layer]; 0 for a dense layer (no expert uses)
  int64_t prefetches = 0;        // reads issued by prefetch
  int64_t useful_prefetches = 0; // prefetched experts used before their layer passed
  double bytes_read_per_token = 0;
  double hit_rate() const { return accesses ? static_cast<double>(hits) / accesses : 0; }
};

SimResult simulate(const RoutingTrace& t, const SimOptions& o);

// Prediction quality from the trace alone: for `ahead` layers ahead with top-m guesses,
// recall = |guess ∩ used| / |used| and precision = |guess ∩ used| / |guess|.
struct PredictionQuality {
  double recall = 0, precision = 0;
};
PredictionQuality prediction_quality(const RoutingTrace& t, int ahead, int m);

}  // namespace mcmoe::offload
