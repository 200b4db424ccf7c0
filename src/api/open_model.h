#pragma once
// The one way a front end opens a model for inference: load it, install the offloading
// expert provider, read ODP's thresholds, and open a session. run, chat, serve, ppl and bench
// all come through here; they differ only in how they fill OpenOptions (cli/ maps flags).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/session.h"
#include "moe/odp.h"
#include "offload/offload_provider.h"

namespace mcmoe::api {

// Experts on the slow tier behind a byte-budgeted cache (offload/offload_provider.h).
struct OffloadSpec {
  bool on = false;
  uint64_t budget_bytes = 0;   // the cache's budget, or
  double budget_fraction = 0;  // (when budget_bytes is 0) a fraction of all experts' bytes
  std::string policy = "lfu";  // lfu | lru | lfu:HALF_LIFE
  bool per_layer = false;
  int prefetch_depth = 1;  // layers ahead; 0: off
  int prefetch_m = 0;      // experts guessed per layer; 0: the model's top-k
  float prefetch_min_prob = 0;
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

// Loads a model file, logging "loaded PATH in S s: <config summary>".
std::unique_ptr<model::Model> load_model(const std::string& path, const model::LoadOptions& lo,
                                         const std::function<void(const std::string&)>& log);

// ODP parameters for a model (the file's thresholds unless spec.mu); null when spec.on is false.
std::unique_ptr<moe::OdpParams> odp_params(const OdpSpec& spec, const model::Model& m);

}  // namespace mcmoe::api
