#pragma once
// The one way a front end opens a model for inference: load it, install the offloading
// expert provider, read ODP's thresholds, and open a session. run, chat, serve, ppl and bench
// all come through here; they differ only in how they fill OpenOptions (cli/ maps flags).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/memory_info.h"
#include "model/model.h"
#include "model/session.h"
#include "moe/odp.h"
#include "offload/offload_provider.h"

namespace mcmoe::api {

// Experts on the slow tier behind a byte-budgeted cache (offload/offload_provider.h).
struct OffloadSpec {
  bool on = false;
  uint64_t budget_bytes = 0;   // the cache's budget, or
  double budget_fraction = 0;  // (when budget_bytes is 0) a fraction of all experts' bytes, or
  bool budget_auto = false;    // what memory allows (auto_expert_budget)
  std::string policy = "lfu";  // offload::make_policy's names
  float cache_aware_margin = 0;  // model::SessionOptions::cache_aware_margin
  bool per_layer = false;
  int prefetch_depth = 1;  // layers ahead; 0: off
  int prefetch_m = 0;      // experts guessed per layer; 0: the model's top-k
  float prefetch_min_prob = 0;
  int prefetch_fit = 0;  // offload::OffloadOptions::prefetch_fit
  std::string prefetch_fit_input =
      "residual";  // residual or logits (RoutePredictor::fit_input_named)
  int io_threads = 2;
  bool direct_io = true;
  std::string seed_stats;        // calibration statistics (mcmoe calibrate) as an LFU prior
  std::string fallback;          // a low-bit copy of the model (HOBBIT), with
  float fallback_threshold = 0;  // the routing weight below which a miss uses it
};

// Online dynamic pruning (moe/odp.h).
struct OdpSpec {
  bool on = false;
  std::optional<float> mu;  // a fixed threshold; otherwise the file's calibrated mcmoe.odp.mu
  // Per-layer thresholds written by `mcmoe odp-fit` (eval/odp_fit.h); a layer without one
  // is not pruned.
  std::string thresholds_file;
  std::vector<int> layers;  // empty: all
  double protect_fraction = 0.02;
};

struct OpenOptions {
  std::string path;
  model::LoadOptions load;  // offloading maps the file whatever this says
  OffloadSpec offload;
  OdpSpec odp;
  bool with_session = true;
  model::SessionOptions session;    // odp is filled in here
  bool allow_long_context = false;  // a context beyond the trained length is refused otherwise
  std::function<void(const std::string&)> log;  // status lines (loaded, offloading, KV cache)
};

// Destroyed in reverse order: the session, then ODP, the model (and its provider), then the
// fallback copy the provider reads.
struct OpenModel {
  std::unique_ptr<model::Model> fallback;
  std::unique_ptr<model::Model> model;
  offload::OffloadingProvider* provider = nullptr;  // owned by model; null when resident
  std::unique_ptr<moe::OdpParams> odp;
  std::unique_ptr<model::Session> session;
};

OpenModel open_model(const OpenOptions& o);

// --expert-cache auto: the memory available (MemAvailable, or the cgroup limit when lower)
// less the resident weights, the KV cache the session will allocate, the fallback copy's
// experts and a margin of 256 MiB + 5% of what is available, at most every expert's bytes.
// Fails with the arithmetic when that cannot hold one expert, or when nothing is known.
struct AutoBudget {
  uint64_t available = 0, resident = 0, kv_cache = 0, fallback = 0, margin = 0;
  uint64_t experts = 0, largest_expert = 0;  // all experts' cache bytes; the largest one's
  uint64_t budget = 0;
  std::string arithmetic;  // "expert cache auto: A MiB available (...) - ... = B MiB, P% of E MiB"
};
AutoBudget auto_expert_budget(const model::Model& m, const model::SessionOptions& so,
                              const model::Model* fallback, const AvailableMemory& avail);

// Loads a model file, logging "loaded PATH in S s: <config summary>".
std::unique_ptr<model::Model> load_model(const std::string& path, const model::LoadOptions& lo,
                                         const std::function<void(const std::string&)>& log);

// ODP parameters for a model (the file's thresholds unless spec.mu); null when spec.on is false.
std::unique_ptr<moe::OdpParams> odp_params(const OdpSpec& spec, const model::Model& m);

}  // namespace mcmoe::api
