#pragma once
// The offloading ExpertProvider (Eliseev & Mazur, HOBBIT): everything but the routed experts
// resident (attention, shared experts, dense layers' MLPs, routers), routed experts read from
// the model file on demand into a byte-budgeted cache, with speculative prefetch from the
// next layers' routers and an optional resident low-bit fallback copy. Dense layers have no
// routed experts: they never reach the cache, and the predictor skips them.
//
// Tiers: the slow tier is a FileReader (disk, pread/O_DIRECT), the fast tier PageBuffers
// in RAM. A host-RAM → GPU pair would replace exactly these two; model code sees only the
// ExpertProvider interface.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model/model.h"
#include "moe/expert_provider.h"
#include "offload/cache_policy.h"
#include "offload/expert_layout.h"
#include "offload/file_reader.h"
#include "offload/predictor.h"
#include "offload/resident_set.h"

namespace mcmoe::offload {

struct OffloadOptions {
  uint64_t budget = 0;            // bytes of expert cache (in-flight reads included)
  std::string policy = "lfu";     // lru, lfu, lfu:HALF_LIFE
  std::vector<double> lfu_seed;   // prior counts per expert (layer * expert_stride + e), optional
  bool per_layer = false;         // one budget per layer instead of one global budget
  int io_threads = 2;
  bool direct_io = true;          // O_DIRECT where the filesystem allows
  int prefetch_depth = 1;         // layers ahead to prefetch; 0 = off
  int prefetch_m = 2;             // top-m predicted experts per layer
  uint64_t prefetch_max_bytes = 0;  // cap on prefetch bytes in flight; 0 = budget / 4
  double prefetch_min_recall = 0.5; // below this (last 64 decode tokens) prefetch pauses
  // A guess is read only when the router gives it at least this probability (its share of the
  // layer's routing scores: RoutePredictor::predict): on a disk-bound machine a wrong prefetch
  // costs a whole expert read plus the eviction it causes.
  float prefetch_min_prob = 0.f;
  // One-layer-ahead guesses from a router refitted online every this many decode tokens
  // (RouterFit); 0: the layer's own router.
  int prefetch_fit = 0;
  // What the refitted map reads: the residual (one layer ahead) or the router's logits (one
  // and two ahead, independent of the hidden size); RoutePredictor::enable_fit.
  RoutePredictor::FitInput prefetch_fit_input = RoutePredictor::FitInput::kResidual;
  // HOBBIT: a resident low-bit copy of every expert (same shapes); a miss whose largest
  // routing weight is below the threshold computes with it instead of waiting for the read.
  model::Model* fallback = nullptr;
  float fallback_threshold = 0.f;
};

struct OffloadStats {
  int64_t steps = 0;              // begin_layer calls (token-layers)
  int64_t accesses = 0, hits = 0; // hits: resident or already being read (by a prefetch)
  int64_t inflight_hits = 0;      // of the hits, still being read when needed
  int64_t fallbacks = 0;          // misses served by the low-bit copy
  std::vector<int64_t> layer_accesses, layer_hits;  // [n_layer]; a dense layer has none
  int64_t reads = 0;              // expert reads issued (demand + prefetch)
  int64_t scale_checks = 0;  // reads whose block scales were checked (each expert's first good one)
  uint64_t bytes_read = 0;
  int64_t prefetches = 0, prefetches_used = 0;  // prefetch reads issued / used at their layer
  int64_t prefetch_paused_tokens = 0;           // decode tokens with prefetch paused (low recall)
  std::vector<int64_t> pred_used, pred_guessed, pred_right;  // per depth (index 0 = 1 ahead)
  double stall_s = 0;             // time get() waited for reads
  uint64_t peak_cache_bytes = 0;  // most bytes held (resident + being read)
  uint64_t budget = 0, expert_bytes_total = 0, fallback_bytes = 0;
  // Bytes of the tensors besides routed experts (attention, shared experts, dense layers'
  // MLPs, routers, embeddings) copied from the file into memory when the provider started.
  uint64_t resident_bytes = 0;
  bool direct_io = false;
  int64_t decode_tokens = 0;      // single-token forward passes seen (after_layer of the last layer)
};

// Bytes of the tensors the provider keeps in memory besides the routed experts (attention,
// shared experts, dense MLPs, routers, embeddings, output head, norms), counted from the
// model's tensor inventory before anything is copied: what --expert-cache auto sets aside.
uint64_t resident_weight_bytes(const model::Model& m);

class OffloadingProvider final : public moe::ExpertProvider {
 public:
  // The model must be a GGUF file with routed experts; every other tensor (the inventory's
  // slots whose role is not RoutedExpert) is copied into memory here.
  OffloadingProvider(model::Model& m, const OffloadOptions& o);
  ~OffloadingProvider() override;

  int n_layers() const override { return n_layer_; }
  int n_experts(int layer) const override { return static_cast<int>(model_.stored_experts()[layer].size()); }
  size_t begin_layer(int layer, std::span<const int> experts, std::span<const float> max_weight) override;
  moe::ExpertWeights get(int layer, int expert) override;
  bool ready(int layer, int expert) const override;
  void end_layer(int layer) override;
  void after_layer(int layer, const float* x, int64_t n) override;
  void cached_mask(int layer, std::span<uint8_t> out) const override;
  void on_router_logits(int layer, const float* logits, int64_t n) override {
    predictor_.observe(layer, logits, n);
  }

  OffloadStats stats() const;
  // Zeroes the counters (not the cache): a benchmark's warm-up stays out of its figures.
  void reset_stats();
  uint64_t cache_bytes() const;  // bytes held now (resident + being read)
  // (layer, expert) of every expert held now (resident or being read), by id.
  std::vector<std::pair<int, int>> cached_experts() const;

 private:
  enum class State : uint8_t { kAbsent, kLoading, kReady, kFailed };
  struct Entry {
    State state = State::kAbsent;
    PageBuffer buffer;
    std::string error;
    int pins = 0;
    bool prefetched = false;        // entered by prefetch and not used yet
    bool prefetch_read = false;     // being read for a prefetch (counts against the in-flight cap)
    int64_t protect_step = -1;      // prefetched for this step: not evicted before it
    bool scales_checked = false;    // a read of it passed check_expert_scales (see io_worker)
  };

  int id(int layer, int expert) const { return layer * n_expert_ + expert; }
  // With mu_ held: makes room and starts a read for id; false when it cannot fit now.
  bool start_read(std::unique_lock<std::mutex>& lock, int id, bool demand);
  void io_worker();
  // With mu_ held: drops a failed entry from the cache and throws its error.
  [[noreturn]] void forget_failed(int id);
  // Expert id's weights with their views in `buffer`, laid out as layout_[id] says.
  moe::ExpertWeights weights_in(int id, uint8_t* buffer) const;
  void load_resident_weights(model::Model& m);
  // Zeroes the traffic counters of stats_ (with mu_ held, or before the workers start).
  void clear_counters();

  model::Model& model_;
  OffloadOptions o_;
  int n_layer_ = 0, n_expert_ = 0;
  std::unique_ptr<FileReader> reader_;
  std::vector<moe::ExpertWeights> stored_;  // [id] shapes/types; data = file offset
  std::vector<ExpertLayout> layout_;
  std::unique_ptr<CachePolicy> policy_;
  std::unique_ptr<ResidentSet> cache_;
  std::vector<Entry> entries_;
  std::vector<uint8_t> use_fallback_;   // [id] this step computes with the low-bit copy
  std::vector<int> pinned_now_;
  std::vector<int> step_ids_;  // begin_layer's ids for the policy
  int partial_layer_ = -1;     // the layer begin_layer last returned part of, until called again
  RoutePredictor predictor_;
  int hint_depth_ = 0;              // layers ahead the policy takes hints for
  int guess_m_ = 0;                 // experts guessed per layer: prefetch_m, or top-k for hints
  std::vector<int> hint_ids_;       // after_layer's scratch: one hint's ids
  std::vector<int> guess_;          // after_layer's scratch: top-m guesses and their
  std::vector<float> guess_prob_;   // probabilities, sized once
  std::vector<std::vector<std::vector<int>>> predicted_;  // [ahead - 1][layer] latest guess, empty when none
  std::deque<int> recall_window_hits_;        // depth-1 outcomes of recent tokens
  std::deque<int> recall_window_used_;
  int64_t window_right_ = 0, window_used_ = 0;
  bool prefetch_active_ = true;
  uint64_t inflight_prefetch_bytes_ = 0;
  uint64_t clock_ = 0;
  int64_t step_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_ready_, cv_work_;
  std::deque<int> queue_;  // ids to read; demand reads at the front
  bool stop_ = false;
  std::vector<std::thread> workers_;
  OffloadStats stats_;
};

}  // namespace mcmoe::offload
