#pragma once
// Offloading flags shared by run / ppl / bench:
//   --expert-cache SIZE|PCT   byte budget of the expert cache ("512MiB", "50%" of all experts);
//                             turns offloading on: experts are read from the file on demand
//   --cache-policy lfu|lru|lfu:HALF_LIFE (default lfu), --per-layer-cache,
//   --cache-seed STATS.json   LFU prior from `mcmoe calibrate` statistics
//   --prefetch D (layers ahead, default 1; 0 off), --prefetch-m M (default top-k),
//   --io-threads N (default 2), --no-direct-io,
//   --fallback LOWBIT.gguf --fallback-threshold W (HOBBIT; off unless both are given),
//   --stats                   print cache statistics at the end.
#include <memory>
#include <set>
#include <string>

#include "cli/args.h"
#include "model/model.h"
#include "offload/offload_provider.h"

namespace mcmoe::cli {

std::set<std::string> with_offload_flags(std::set<std::string> value_flags);
std::set<std::string> with_offload_switches(std::set<std::string> switches);
// Offloading maps the file (nothing read up front); otherwise `base` unchanged.
model::LoadOptions offload_load_options(const Args& a, model::LoadOptions base);

struct Offload {
  std::unique_ptr<model::Model> fallback;
  offload::OffloadingProvider* provider = nullptr;  // owned by the model; null when off
};
// Installs the offloading provider on m when --expert-cache is given.
Offload install_offload(const Args& a, model::Model& m);
// The --stats block: cache figures when offloading, and peak RSS either way. `tokens` and
// `seconds` are the decode tokens and time the caller measured (0: not shown).
void print_offload_stats(const Args& a, const Offload& o, int64_t tokens, double seconds);

}  // namespace mcmoe::cli
