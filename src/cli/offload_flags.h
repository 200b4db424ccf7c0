#pragma once
// Offloading flags shared by run / ppl / bench:
//   --expert-cache SIZE|PCT   byte budget of the expert cache ("512MiB", "50%" of all experts);
//                             turns offloading on: experts are read from the file on demand
//   --expert-cache auto      what memory allows (api::auto_expert_budget)
//   --cache-policy lfu|lru|lfu:HALF_LIFE|cycle[:HALF_LIFE] (default lfu), --per-layer-cache,
//   --cache-aware-routing MARGIN (prefer cached experts within MARGIN; default 0 = off),
//   --cache-seed STATS.json   LFU prior from `mcmoe calibrate` statistics
//   --prefetch D (layers ahead, default 1; 0 off), --prefetch-m M (default top-k),
//   --io-threads N (default 2), --no-direct-io,
//   --fallback LOWBIT.gguf --fallback-threshold W (HOBBIT; off unless both are given),
//   --stats                   print cache statistics at the end.
#include <memory>
#include <set>
#include <string>

#include "api/open_model.h"
#include "cli/args.h"
#include "model/model.h"
#include "model/session.h"
#include "offload/offload_provider.h"

namespace mcmoe::cli {

// The offloading flags with their help (appended to a command's table).
const FlagTable& offload_flag_table();
// The offloading flags as the library's spec (api/open_model.h); offloading is on with
// --expert-cache. Fails naming the flag when one is given without --expert-cache.
api::OffloadSpec offload_spec(const Args& a);
// The --stats block: cache figures when offloading (provider non-null), and peak RSS either
// way. `tokens` and `seconds` are the decode tokens and time the caller measured (0: not shown).
// cache_aware (may be null: none shown) adds cache-aware routing's counts.
void print_offload_stats(const Args& a, const offload::OffloadingProvider* provider, int64_t tokens,
                         double seconds, const moe::CacheAwareCounts* cache_aware = nullptr);

}  // namespace mcmoe::cli
