#pragma once
// Which resident expert to evict next. One interface for the live expert cache and the
// offline simulator, so a policy measured by `mcmoe cachesim` is the policy `run` uses.
//
// Experts are named by a dense id (layer * n_expert + expert). The clock is a step counter
// the caller advances once per (token, layer); all experts a layer uses in one step share it.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace mcmoe::offload {

class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual std::string name() const = 0;
  // The expert was used at `clock` (a hit, or the read that a miss caused).
  virtual void on_use(int id, uint64_t clock) = 0;
  // The expert entered the cache without being used (a prefetch).
  virtual void on_prefetch(int id, uint64_t clock) = 0;
  // A layer's step begins and will use `ids` (its picks, every id of that layer), before
  // any of them is looked up. Policies that know where in the cycle of layers they are use
  // it; the others ignore it.
  virtual void begin_step(int /*layer*/, std::span<const int> /*ids*/, uint64_t /*clock*/) {}
  // After a layer's step: the experts the router of the layer `ahead` layers later guesses
  // for the same token (ids of that layer; the predictor's top-k). A hint costs no read;
  // policies that use it keep the guessed experts, the others ignore it.
  virtual void hint(int /*layer*/, int /*ahead*/, std::span<const int> /*ids*/) {}
  // How many layers ahead the policy wants hints for (0: none); the live cache runs the
  // predictor that far even without prefetch (a router product per layer, no reads).
  virtual int hint_depth() const { return 0; }
  // The one of `candidates` (resident, not pinned, never empty) to evict at `clock`.
  virtual int victim(std::span<const int> candidates, uint64_t clock) const = 0;
};

// Least recently used: the paper's policy.
std::unique_ptr<CachePolicy> make_lru(int n_ids);

// Least frequently used, ties broken by recency. Counts survive eviction (an expert's
// popularity is a property of the expert, not of its stay in the cache). `seed` gives each
// id a prior count, e.g. calibration frequency × n_tokens, so a cold cache starts with the
// experts that calibration says are hot; empty: no prior.
// half_life > 0 (in clock steps) makes it LRFU: each use's weight halves every half_life
// steps, between LFU (infinite) and LRU (tiny).
std::unique_ptr<CachePolicy> make_lfu(int n_ids, std::span<const double> seed = {}, double half_life = 0);

// Belady's optimal rule for offline evaluation: evict the expert whose next use is furthest
// in the future. `uses[id]` lists the clocks at which id is used, ascending. Optimal for
// equal-sized experts; with mixed sizes it is the classic furthest-next-use bound.
std::unique_ptr<CachePolicy> make_belady(std::vector<std::vector<uint64_t>> uses);

// Layer-aware expected-next-use eviction (cycle_policy.cpp explains the estimate).
struct CycleOptions {
  double half_life_tokens = 0;  // counts halve every this many steps of their layer; 0: no decay
  bool temporal = true;         // the next token's use conditioned on this token's (per expert)
  bool co_occurrence = true;    // the next layer's experts conditioned on this layer's picks
  double prior_tokens = 8;      // weight, in tokens, of the prior rate
  bool hints = true;            // use the predictor's guesses for the next layers (hint())
};
std::unique_ptr<CachePolicy> make_cycle(int n_layer, int n_expert, const CycleOptions& o,
                                        std::span<const double> seed = {});

// The live policies by name: "lru", "lfu", "lfu:HALF_LIFE" (in steps), "cycle",
// "cycle:HALF_LIFE" (in tokens; 0 = no decay), and for measuring each part:
// "cycle-rate[:H]" (distance in the cycle and rates only), "cycle-temporal[:H]" (+ the
// per-expert token-to-token transition), "cycle-nohint[:H]" (+ co-occurrence; all but
// the prediction hints). Ids are layer * n_expert + expert. Belady needs the future and is made by
// the simulator.
std::unique_ptr<CachePolicy> make_policy(const std::string& name, int n_layer, int n_expert,
                                         std::span<const double> seed = {});

}  // namespace mcmoe::offload
