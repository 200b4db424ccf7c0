// mcmoe trace: record a model's routing over a text; mcmoe cachesim: replay it against
// expert-cache policies and budgets.
#include <cstdio>
#include <numeric>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "offload/cache_policy.h"
#include "offload/cache_sim.h"
#include "offload/trace.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

int cmd_trace(const Argv& argv) {
  static const CommandSpec spec{
      "trace", "record a model's routing over a text, for cachesim and synth --routing-from",
      with_groups({kModelFlag,
                   {"-f", "TEXT", "", "the text file"},
                   {"-o", "TRACE", "", "where to write the trace"},
                   {"--ctx", "N", "512", "window size; the KV cache is reset between windows"},
                   {"--max-tokens", "N", "all", "trace at most N tokens of the text"},
                   {"--depth", "D", "2", "record router predictions up to D layers ahead"},
                   {"--top-m", "M", "min(4, experts)", "experts predicted per layer"},
                   {"--fit-predictor", "N", "0",
                    "one-layer-ahead predictions from routers refitted on the text every N tokens "
                    "(0: off)"},
                   {"--fit-input", "residual|logits", "residual",
                    "with --fit-predictor: the map reads the residual (one layer ahead) or the "
                    "router's logits (one and two ahead)"},
                   kThreadsFlag},
                  {load_flag_table()})};
  const Args a(argv, spec);
  auto m = load_model_verbose(a.required("-m", "model path"), load_options_flags(a));
  const std::string text_path = a.required("-f", "text file");
  const std::string out = a.required("-o", "output trace path");
  const std::string text = read_text_file(text_path);
  const std::vector<int32_t> ids = m->tokenizer().encode(text);
  offload::TraceOptions o;
  o.ctx = static_cast<int>(a.integer("--ctx", 512, 2, 1 << 20));
  o.max_tokens = a.integer("--max-tokens", 0, 0, INT64_MAX);
  o.threads = threads_flag(a);
  o.depth = static_cast<int>(a.integer("--depth", 2, 1, 64));
  o.m = static_cast<int>(a.integer("--top-m", std::min(4, m->config().n_expert), 1, 1 << 16));
  o.fit = static_cast<int>(a.integer("--fit-predictor", 0, 0, 1 << 20));
  o.fit_input = offload::RoutePredictor::fit_input_named(a.str("--fit-input", "residual"));
  Progress progress("trace");
  o.progress = [&](size_t done, size_t total) { progress.update(static_cast<int64_t>(done), static_cast<int64_t>(total)); };
  const offload::RoutingTrace t = offload::record_trace(*m, ids, o);
  progress.finish();
  offload::write_trace(t, out);
  std::fprintf(stderr, "%s: %lld tokens x %d layers, predictions %d layers ahead (top-%d)\n", out.c_str(),
               static_cast<long long>(t.n_tokens()), t.n_layer, t.depth, t.m);
  return 0;
}

int cmd_cachesim(const Argv& argv) {
  static const CommandSpec spec{
      "cachesim",
      "replay a routing trace from `mcmoe trace` against expert-cache policies and budgets "
      "(mcmoe cachesim TRACE [flags])",
      {{"--budget", "SIZE|PCT", "50%",
        "cache size: bytes (512MiB) or a share of all experts' bytes"},
       {"--policy", "P1,P2,...",
        "lru, lfu, lfu-seeded, cycle (with and without prefetch) and belady",
        "simulate these policies: lru, lfu, lfu:HALF_LIFE, cycle, cycle:HALF_LIFE, "
        "cycle-rate, cycle-temporal, cycle-nohint (cycle without some of its parts), any of them "
        "NAME-seeded, each optionally NAME+prefetch; "
        "belady (the demand-only optimum) is always added"},
       {"--prefetch-depth", "D", "min(1, the trace's depth)",
        "layers ahead prefetched by the +prefetch runs (0: none)"},
       {"--prefetch-m", "M", "min(top-k, the trace's top-m)", "experts prefetched per layer"},
       {"--seed-tokens", "N", "a fifth of the trace",
        "tokens the -seeded policies learn their prior from; every policy replays the rest"},
       {"--per-layer", nullptr, "", "split the budget evenly over the layers"},
       {"--layers", nullptr, "", "also print each layer's hit rate"}}};
  const Args a(argv, spec);
  if (a.positional().size() != 1) fail("cachesim: expected one TRACE argument, found {}", a.positional().size());
  const offload::RoutingTrace t = offload::read_trace(a.positional()[0]);
  const uint64_t total = std::accumulate(t.expert_bytes.begin(), t.expert_bytes.end(), uint64_t{0});
  const uint64_t budget = parse_bytes_or_percent(a.str("--budget", "50%"), total, "--budget");
  offload::SimOptions base;
  base.budget = budget;
  base.per_layer = a.has("--per-layer");
  base.prefetch_m = static_cast<int>(a.integer("--prefetch-m", std::min(t.k, t.m), 1, t.m));
  const int depth = static_cast<int>(a.integer("--prefetch-depth", std::min(1, t.depth), 0, t.depth));
  // The -seeded policies learn their prior from the first tokens (a stand-in for calibration text);
  // every policy then replays the same remaining tokens (SimOptions::seed_tokens).
  base.seed_tokens = a.integer("--seed-tokens", t.n_tokens() / 5, 0, t.n_tokens() - 1);
  std::vector<offload::SimOptions> runs;
  auto add = [&](const std::string& p, int d) {
    offload::SimOptions o = base;
    o.policy = p;
    o.prefetch_depth = d;
    runs.push_back(o);
  };
  if (a.has("--policy")) {
    for (const std::string& p : split_list(a.str("--policy", ""), "--policy")) {
      const bool pf = p.ends_with("+prefetch");
      const std::string name = pf ? p.substr(0, p.size() - 9) : p;
      if (name == "belady") {
        if (pf) fail("--policy: belady is the demand-only optimum; belady+prefetch does not exist");
        continue;  // added once, last
      }
      // Refused here, naming the policy, rather than after the earlier runs printed.
      const std::string live = name.ends_with("-seeded") ? name.substr(0, name.size() - 7) : name;
      try {
        offload::make_policy(live, t.n_layer, t.n_expert);
      } catch (const Error& e) {
        fail("--policy '{}': {}", p, e.what());
      }
      add(name, pf ? std::max(1, depth) : 0);
    }
    add("belady", 0);
  } else {
    for (const char* p : {"lru", "lfu", "lfu-seeded", "cycle"}) add(p, 0);
    if (depth > 0) {
      for (const char* p : {"lru", "lfu", "lfu-seeded", "cycle"}) add(p, depth);
    }
    add("belady", 0);
  }
  // Dense layers (DeepSeek's and GLM's first) have no routed experts: nothing to cache there.
  std::string dense;
  for (int l = 0; l < t.n_layer; ++l) {
    if (t.experts_in(l) == 0) dense += (dense.empty() ? "" : ",") + std::to_string(l);
  }
  std::printf("# %s: %lld tokens (replayed from token %lld), %d layers x %d experts%s, budget %.1f MiB = %.1f%% of %.1f MiB of experts%s\n",
              a.positional()[0].c_str(), static_cast<long long>(t.n_tokens()), static_cast<long long>(base.seed_tokens),
              t.n_layer, t.n_expert, dense.empty() ? "" : (" (dense: layer " + dense + ")").c_str(), budget / 1048576.0,
              100.0 * budget / std::max<uint64_t>(total, 1), total / 1048576.0, base.per_layer ? ", per-layer budgets" : "");
  for (const offload::SimOptions& o : runs) {
    const offload::SimResult r = offload::simulate(t, o);
    std::printf("%s hit-rate %.4f bytes/token %.2f MiB", r.label.c_str(), r.hit_rate(), r.bytes_read_per_token / 1048576.0);
    if (o.prefetch_depth > 0) {
      std::printf(" prefetches/token %.2f useful %.1f%%", static_cast<double>(r.prefetches) / std::max<int64_t>(1, r.tokens),
                  r.prefetches ? 100.0 * r.useful_prefetches / r.prefetches : 0.0);
    }
    if (a.has("--layers")) {
      std::printf(" layers");
      for (int l = 0; l < t.n_layer; ++l) {
        if (t.experts_in(l) == 0) {
          std::printf(" -");  // dense: no expert uses to hit or miss
        } else {
          std::printf(" %.3f", r.layer_hit_rate[l]);
        }
      }
    }
    std::printf("\n");
  }
  for (int ahead = 1; ahead <= t.depth; ++ahead) {
    const offload::PredictionQuality q = offload::prediction_quality(t, ahead, base.prefetch_m);
    std::printf("# prediction %d layer(s) ahead, top-%d: recall %.4f precision %.4f\n", ahead, base.prefetch_m, q.recall, q.precision);
  }
  return 0;
}

}  // namespace mcmoe::cli
