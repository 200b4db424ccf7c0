#include "cli/offload_flags.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <numeric>
#include <span>

#include "cli/common.h"
#include "core/error.h"

namespace mcmoe::cli {

namespace {

// VmHWM of this process in bytes (0 when unknown).
uint64_t peak_rss() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

}  // namespace

const FlagTable& offload_flag_table() {
  static const FlagTable t = {
      {"--expert-cache", "SIZE|PCT|auto", "",
       "offload experts: read them from the file into a cache of SIZE bytes (512MiB), PCT of all "
       "experts (50%), or auto: the memory available (MemAvailable or the cgroup limit) less "
       "resident "
       "weights, KV cache, fallback copy and a margin (the arithmetic is printed)"},
      {"--cache-policy", "POLICY", "lfu",
       "expert cache eviction: lfu, lru, lfu:HALF_LIFE (steps), cycle (layer-aware expected next "
       "use), "
       "cycle:HALF_LIFE (tokens)"},
      {"--cache-aware-routing", "MARGIN", "0",
       "replace an uncached pick by a cached expert whose router probability is within MARGIN "
       "(relative, 0..1) of it; changes the output (0: off)"},
      {"--per-layer-cache", nullptr, "", "split the cache budget evenly over the layers"},
      {"--cache-seed", "STATS.json", "", "LFU prior from `mcmoe calibrate` statistics"},
      {"--prefetch", "D", "1", "prefetch the experts the next D layers' routers predict (0: off)"},
      {"--prefetch-m", "M", "top-k", "experts guessed per layer"},
      {"--prefetch-min-prob", "P", "0", "skip guesses below this router probability"},
      {"--prefetch-fit", "N", "250",
       "refit the guesses on the decoded text every N tokens (0: the layers' own routers)"},
      {"--prefetch-fit-input", "residual|logits", "logits",
       "what the refitted map reads: the residual (one layer ahead, (d+1)^2 per token) or the "
       "router's logits (one and two ahead, (experts+1)^2 per token)"},
      {"--io-threads", "N", "2", "expert reader threads"},
      {"--no-direct-io", nullptr, "", "read through the page cache instead of O_DIRECT"},
      {"--fallback", "LOWBIT.gguf", "", "a low-bit copy of the model that serves misses (HOBBIT)"},
      {"--fallback-threshold", "W", "",
       "misses with routing weight below W use the --fallback copy"},
      {"--stats", nullptr, "", "print expert cache statistics and peak RSS at the end"},
  };
  return t;
}

api::OffloadSpec offload_spec(const Args& a) {
  api::OffloadSpec o;
  if (!a.has("--expert-cache")) {
    // The others only mean something when offloading is on (--stats prints RSS either way).
    for (const FlagSpec& f : offload_flag_table()) {
      if (a.has(f.name) && std::string_view(f.name) != "--stats")
        fail("{} needs --expert-cache (offloading is off without it)", f.name);
    }
    return o;
  }
  o.on = true;
  const std::string budget = a.str("--expert-cache", "");
  if (budget == "auto") {
    o.budget_auto = true;
  } else if (!budget.empty() && budget.back() == '%') {
    constexpr unsigned long long kWhole = 1000000000000ULL;  // the percentage, checked, to 1e-12
    o.budget_fraction =
        static_cast<double>(parse_bytes_or_percent(budget, kWhole, "--expert-cache")) / kWhole;
  } else {
    o.budget_bytes = parse_bytes(budget, "--expert-cache");
    if (o.budget_bytes == 0) fail("--expert-cache: the budget must be above 0, found '{}'", budget);
  }
  o.policy = a.str("--cache-policy", "lfu");
  o.cache_aware_margin = static_cast<float>(a.number("--cache-aware-routing", 0, 0, 1));
  o.per_layer = a.has("--per-layer-cache");
  o.prefetch_depth = static_cast<int>(a.integer("--prefetch", 1, 0, 16));
  o.prefetch_m = static_cast<int>(a.integer("--prefetch-m", 0, 1, 1 << 16));
  o.prefetch_min_prob = static_cast<float>(a.number("--prefetch-min-prob", 0, 0, 1));
  // Refitting from the router's logits is the default: it costs (experts + 1)² per token and
  // layer whatever the hidden size, and raised next-layer recall 0.83 -> 0.87 on mixtral-tiny
  // (bench/RESULTS.md §12); guesses never change the output.
  o.prefetch_fit = static_cast<int>(a.integer("--prefetch-fit", 250, 0, 1 << 20));
  o.prefetch_fit_input = a.str("--prefetch-fit-input", "logits");
  if (a.has("--prefetch-fit-input") && o.prefetch_fit == 0)
    fail("--prefetch-fit-input needs --prefetch-fit N > 0");
  o.io_threads = static_cast<int>(a.integer("--io-threads", 2, 1, 64));
  o.direct_io = !a.has("--no-direct-io");
  o.seed_stats = a.str("--cache-seed", "");
  if (a.has("--fallback") != a.has("--fallback-threshold")) fail("--fallback and --fallback-threshold go together");
  o.fallback = a.str("--fallback", "");
  o.fallback_threshold = static_cast<float>(a.number("--fallback-threshold", 0, 0, 1));
  return o;
}

void print_offload_stats(const Args& a, const offload::OffloadingProvider* provider, int64_t tokens,
                         double seconds, const moe::CacheAwareCounts* cache_aware) {
  if (!a.has("--stats")) return;
  std::fprintf(stderr, "stats:\n");
  if (tokens > 0 && seconds > 0) std::fprintf(stderr, "  decode %lld tokens, %.2f tok/s\n", static_cast<long long>(tokens), tokens / seconds);
  if (provider) {
    const offload::OffloadStats s = provider->stats();
    const double per_tok = static_cast<double>(std::max<int64_t>(1, tokens > 0 ? tokens : s.decode_tokens));
    std::fprintf(stderr, "  expert cache: budget %.1f MiB, peak %.1f MiB, %s I/O; resident besides: %.1f MiB\n",
                 s.budget / 1048576.0, s.peak_cache_bytes / 1048576.0, s.direct_io ? "O_DIRECT" : "buffered",
                 s.resident_bytes / 1048576.0);
    std::fprintf(stderr, "  hit rate %.4f (%lld of %lld expert uses; %lld were still being read by a prefetch)\n",
                 s.accesses ? static_cast<double>(s.hits) / s.accesses : 0.0, static_cast<long long>(s.hits),
                 static_cast<long long>(s.accesses), static_cast<long long>(s.inflight_hits));
    std::fprintf(stderr, "  per layer:");
    for (size_t l = 0; l < s.layer_hits.size(); ++l) {
      if (provider->n_experts(static_cast<int>(l)) == 0) {
        std::fprintf(stderr, " -");  // a dense layer: no routed experts, nothing cached
        continue;
      }
      std::fprintf(stderr, " %.2f", s.layer_accesses[l] ? static_cast<double>(s.layer_hits[l]) / s.layer_accesses[l] : 0.0);
    }
    std::fprintf(stderr,
                 "\n  reads %lld, %.2f MiB per token; stall %.2f ms per token (%.2f s total); "
                 "scales checked on %lld first reads\n",
                 static_cast<long long>(s.reads), s.bytes_read / 1048576.0 / per_tok,
                 1e3 * s.stall_s / per_tok, s.stall_s, static_cast<long long>(s.scale_checks));
    for (size_t a1 = 0; a1 < s.pred_used.size(); ++a1) {
      std::fprintf(stderr, "  prediction %zu layer(s) ahead: recall %.3f precision %.3f\n", a1 + 1,
                   s.pred_used[a1] ? static_cast<double>(s.pred_right[a1]) / s.pred_used[a1] : 0.0,
                   s.pred_guessed[a1] ? static_cast<double>(s.pred_right[a1]) / s.pred_guessed[a1] : 0.0);
    }
    if (!s.pred_used.empty()) {
      std::fprintf(stderr, "  prefetch reads %lld, used %lld (%.1f%%); paused for low recall on %lld of %lld decode tokens\n",
                   static_cast<long long>(s.prefetches), static_cast<long long>(s.prefetches_used),
                   s.prefetches ? 100.0 * s.prefetches_used / s.prefetches : 0.0,
                   static_cast<long long>(s.prefetch_paused_tokens), static_cast<long long>(s.decode_tokens));
    }
    if (s.fallback_bytes > 0) {
      std::fprintf(stderr, "  low-bit fallback: %lld expert uses (%.1f%%), resident copy %.1f MiB\n",
                   static_cast<long long>(s.fallbacks), s.accesses ? 100.0 * s.fallbacks / s.accesses : 0.0,
                   s.fallback_bytes / 1048576.0);
    }
    if (cache_aware && a.has("--cache-aware-routing")) {
      const moe::CacheAwareCounts& c = *cache_aware;
      std::fprintf(stderr,
                   "  cache-aware routing (whole run): %lld of %lld picks uncached, %lld of them "
                   "(%.1f%%) moved to a cached expert\n",
                   static_cast<long long>(c.uncached), static_cast<long long>(c.picks),
                   static_cast<long long>(c.swapped),
                   c.uncached ? 100.0 * c.swapped / c.uncached : 0.0);
    }
  } else {
    std::fprintf(stderr, "  experts: all resident (no --expert-cache)\n");
  }
  std::fprintf(stderr, "  peak RSS %.1f MiB\n", peak_rss() / 1048576.0);
}

}  // namespace mcmoe::cli
