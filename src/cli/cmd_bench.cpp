#include <algorithm>
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/offload_flags.h"
#include "core/error.h"
#include "eval/bench.h"
#include "kernels/dispatch.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

int cmd_bench(const Argv& argv) {
  static const CommandSpec spec{
      "bench", "prefill and decode speed, with the machine's read bandwidth as the roofline",
      with_groups(
          {kModelFlag,
           {"--prompt-tokens", "N", "512", "prefill length"},
           {"--gen-tokens", "N", "128", "decode length"},
           {"--depth", "N", "0", "tokens already in the KV cache before decoding"},
           {"--reps", "N", "2", "repetitions (the best is reported)"},
           {"--text", "FILE", "",
            "decode the tokens of this text instead of token 0 (routing as in use)"},
           {"--isa", "scalar|avx2|avx512", "the best this CPU runs", "force a kernel path"},
           {"--no-bandwidth", nullptr, "", "skip the read-bandwidth measurement"}},
          {session_flag_table(), load_flag_table(), offload_flag_table(), odp_flag_table()})};
  const Args a(argv, spec);
  if (a.has("--isa")) {
    // Forces a kernel path, to compare them on one model (default: the best this CPU runs).
    const std::string name = a.str("--isa", "");
    const std::optional<kernels::Isa> isa = kernels::isa_from_name(name);
    if (!isa) fail("--isa: '{}' is not one of scalar, avx2, avx512", name);
    if (!kernels::isa_supported(*isa)) fail("--isa {}: this CPU cannot run it", name);
    kernels::set_isa_override(isa);
  }
  api::OpenOptions oo = open_options(a, a.required("-m", "model path"), 0);
  oo.with_session = false;  // eval::bench opens its own sessions for each measurement
  api::OpenModel om = api::open_model(oo);
  model::Model* m = om.model.get();
  eval::BenchOptions o;
  o.threads = threads_flag(a);
  o.prompt_tokens = static_cast<int>(a.integer("--prompt-tokens", 512, 1, 1 << 20));
  o.gen_tokens = static_cast<int>(a.integer("--gen-tokens", 128, 1, 1 << 20));
  o.depth = static_cast<int>(a.integer("--depth", 0, 0, 1 << 20));
  o.cache_type = cache_type_flag(a);
  o.batch_size = static_cast<int>(a.integer("--batch-size", 512, 1, 1 << 20));
  // Speed only: bench runs past the trained length without asking, and says so.
  const int ctx = std::max(o.prompt_tokens, o.depth) + o.gen_tokens;
  if (ctx > m->config().n_ctx_train) {
    std::printf("note: context %d is beyond the model's trained length %d (speed only)\n", ctx,
                m->config().n_ctx_train);
  }
  o.repetitions = static_cast<int>(a.integer("--reps", 2, 1, 100));
  o.measure_bandwidth = !a.has("--no-bandwidth");
  o.touch_weights = om.provider == nullptr;
  if (om.provider) o.on_decode_start = [p = om.provider] { p->reset_stats(); };
  if (a.has("--text")) {
    o.decode_tokens = m->tokenizer().encode(read_text_file(a.str("--text", "")));
    if (static_cast<int>(o.decode_tokens.size()) < o.gen_tokens) {
      fail("--text {}: {} tokens, fewer than --gen-tokens {}", a.str("--text", ""), o.decode_tokens.size(), o.gen_tokens);
    }
  }
  o.odp = om.odp.get();
  // The margin lives in the spec: bench opens its own sessions, so it is passed on here.
  o.cache_aware_margin = oo.offload.on ? oo.offload.cache_aware_margin : 0.f;
  const eval::BenchResult r = eval::bench(*m, o);
  std::printf("threads %d, kernels %s\n", o.threads,
              kernels::isa_name(kernels::active_kernels().isa));
  std::printf("prefill %d tokens: %.1f tok/s (%.1f GFLOP/s)\n", o.prompt_tokens, r.prefill_tok_s, r.prefill_gflop_s);
  std::printf("decode %d tokens at depth %d: %.2f tok/s, %.1f MB read/token (%.1f MB of it KV cache), %.1f GB/s achieved\n",
              o.gen_tokens, o.depth, r.decode_tok_s, r.bytes_per_token / 1e6, r.kv_read_per_token / 1e6, r.decode_gb_s);
  std::printf(
      "KV cache: %.0f bytes per token (all %d layers, %s); %.1f MiB allocated for %d tokens\n",
      r.kv_bytes_per_token, m->config().n_layer, std::string(dtype_name(o.cache_type)).c_str(),
      static_cast<double>(r.kv_cache_bytes) / (1 << 20), r.n_ctx);
  std::printf("batch scratch: %.1f MiB for %d-token prefill chunks\n",
              static_cast<double>(r.scratch_bytes) / (1 << 20), std::min(o.batch_size, r.n_ctx));
  if (o.measure_bandwidth) {
    std::printf("machine read bandwidth %.1f GB/s -> roofline %.2f tok/s; decode at %.0f%% of roofline\n",
                r.bandwidth_gb_s, r.roofline_tok_s, 100.0 * r.decode_tok_s / r.roofline_tok_s);
  }
  if (om.odp)
    std::printf("odp: %.2f%% of expert activations pruned\n", 100.0 * r.odp_pruned_fraction);
  std::fflush(stdout);
  // With --reps > 1 the counters describe the last run; its speed is printed above.
  print_offload_stats(a, om.provider, 0, 0, &r.cache_aware);
  return 0;
}

}  // namespace mcmoe::cli
