#include "cli/offload_flags.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <numeric>
#include <span>

#include "cli/common.h"
#include "compress/stats.h"
#include "core/error.h"
#include "offload/expert_layout.h"

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

// The flags besides --expert-cache (and --stats) only mean something when offloading is on.
constexpr const char* kOffloadValueFlags[] = {"--cache-policy", "--cache-seed", "--prefetch", "--prefetch-m", "--prefetch-min-prob",
                                              "--io-threads", "--fallback", "--fallback-threshold"};
constexpr const char* kOffloadSwitches[] = {"--per-layer-cache", "--no-direct-io"};

std::set<std::string> with_offload_flags(std::set<std::string> v) {
  v.insert("--expert-cache");
  v.insert(std::begin(kOffloadValueFlags), std::end(kOffloadValueFlags));
  return v;
}

std::set<std::string> with_offload_switches(std::set<std::string> s) {
  s.insert("--stats");
  s.insert(std::begin(kOffloadSwitches), std::end(kOffloadSwitches));
  return s;
}

model::LoadOptions offload_load_options(const Args& a, model::LoadOptions base) {
  if (a.has("--expert-cache")) base.memory = model::LoadOptions::Memory::kMap;
  return base;
}

Offload install_offload(const Args& a, model::Model& m) {
  Offload out;
  if (!a.has("--expert-cache")) {
    for (const auto& flags : {std::span<const char* const>(kOffloadValueFlags), std::span<const char* const>(kOffloadSwitches)}) {
      for (const char* f : flags) {
        if (a.has(f)) fail("{} needs --expert-cache (offloading is off without it)", f);
      }
    }
    return out;
  }
  const std::vector<uint64_t> sizes = offload::expert_cache_bytes(m);
  const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  offload::OffloadOptions o;
  o.budget = parse_bytes_or_percent(a.str("--expert-cache", ""), total, "--expert-cache");
  o.policy = a.str("--cache-policy", "lfu");
  o.per_layer = a.has("--per-layer-cache");
  o.prefetch_depth = static_cast<int>(a.integer("--prefetch", 1, 0, 16));
  o.prefetch_m = static_cast<int>(a.integer("--prefetch-m", m.config().n_expert_used, 1, m.config().n_expert));
  o.prefetch_min_prob = static_cast<float>(a.number("--prefetch-min-prob", 0, 0, 1));
  o.io_threads = static_cast<int>(a.integer("--io-threads", 2, 1, 64));
  o.direct_io = !a.has("--no-direct-io");
  if (a.has("--cache-seed")) {
    const std::string path = a.str("--cache-seed", "");
    const compress::CalibrationStats s = compress::load_stats(path);
    compress::check_stats_match(s, m, path);
    // A prior worth a few hundred tokens: enough to start warm, little enough to adapt.
    constexpr double kPriorTokens = 256;
    // Indexed as the cache names experts (layer * stride + expert): a dense layer, or a
    // reduced layer with fewer experts, leaves its ids at 0.
    const size_t stride = static_cast<size_t>(offload::expert_stride(m));
    o.lfu_seed.assign(m.stored_experts().size() * stride, 0.0);
    if (s.layers.size() != m.stored_experts().size()) {
      fail("{}: statistics for {} layers; {} has {}", path, s.layers.size(), m.path(), m.stored_experts().size());
    }
    for (size_t l = 0; l < s.layers.size(); ++l) {
      const compress::LayerStats& L = s.layers[l];
      if (L.experts.size() != m.stored_experts()[l].size()) {
        fail("{}: layer {} has statistics for {} experts; {} stores {} there", path, l, L.experts.size(), m.path(),
             m.stored_experts()[l].size());
      }
      for (size_t e = 0; e < L.experts.size(); ++e) {
        o.lfu_seed[l * stride + e] = L.phi(static_cast<int>(e)) * m.config().n_expert_used * kPriorTokens;
      }
    }
  }
  if (a.has("--fallback") != a.has("--fallback-threshold")) fail("--fallback and --fallback-threshold go together");
  if (a.has("--fallback")) {
    // Mapped: only the experts the fallback actually serves are ever paged in.
    out.fallback = load_model_verbose(a.str("--fallback", ""), {.memory = model::LoadOptions::Memory::kMap});
    o.fallback = out.fallback.get();
    o.fallback_threshold = static_cast<float>(a.number("--fallback-threshold", 0, 0, 1));
  }
  auto p = std::make_unique<offload::OffloadingProvider>(m, o);
  out.provider = p.get();
  std::fprintf(stderr, "offloading experts: cache %.1f MiB of %.1f MiB (%.0f%%), policy %s%s, prefetch %d layer(s) top-%d, %s I/O%s\n",
               o.budget / 1048576.0, total / 1048576.0, 100.0 * o.budget / std::max<uint64_t>(1, total), o.policy.c_str(),
               o.per_layer ? " per layer" : "", o.prefetch_depth, o.prefetch_m, p->stats().direct_io ? "O_DIRECT" : "buffered",
               o.fallback ? fmt::format(", low-bit fallback below weight {}", o.fallback_threshold).c_str() : "");
  m.set_expert_provider(std::move(p));
  return out;
}

void print_offload_stats(const Args& a, const Offload& o, int64_t tokens, double seconds) {
  if (!a.has("--stats")) return;
  std::fprintf(stderr, "stats:\n");
  if (tokens > 0 && seconds > 0) std::fprintf(stderr, "  decode %lld tokens, %.2f tok/s\n", static_cast<long long>(tokens), tokens / seconds);
  if (o.provider) {
    const offload::OffloadStats s = o.provider->stats();
    const double per_tok = static_cast<double>(std::max<int64_t>(1, tokens > 0 ? tokens : s.decode_tokens));
    std::fprintf(stderr, "  expert cache: budget %.1f MiB, peak %.1f MiB, %s I/O; resident besides: %.1f MiB\n",
                 s.budget / 1048576.0, s.peak_cache_bytes / 1048576.0, s.direct_io ? "O_DIRECT" : "buffered",
                 s.resident_bytes / 1048576.0);
    std::fprintf(stderr, "  hit rate %.4f (%lld of %lld expert uses; %lld were still being read by a prefetch)\n",
                 s.accesses ? static_cast<double>(s.hits) / s.accesses : 0.0, static_cast<long long>(s.hits),
                 static_cast<long long>(s.accesses), static_cast<long long>(s.inflight_hits));
    std::fprintf(stderr, "  per layer:");
    for (size_t l = 0; l < s.layer_hits.size(); ++l) {
      if (o.provider->n_experts(static_cast<int>(l)) == 0) {
        std::fprintf(stderr, " -");  // a dense layer: no routed experts, nothing cached
        continue;
      }
      std::fprintf(stderr, " %.2f", s.layer_accesses[l] ? static_cast<double>(s.layer_hits[l]) / s.layer_accesses[l] : 0.0);
    }
    std::fprintf(stderr, "\n  reads %lld, %.2f MiB per token; stall %.2f ms per token (%.2f s total)\n",
                 static_cast<long long>(s.reads), s.bytes_read / 1048576.0 / per_tok, 1e3 * s.stall_s / per_tok, s.stall_s);
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
  } else {
    std::fprintf(stderr, "  experts: all resident (no --expert-cache)\n");
  }
  std::fprintf(stderr, "  peak RSS %.1f MiB\n", peak_rss() / 1048576.0);
}

}  // namespace mcmoe::cli
