// mcmoe reduce: fewer experts by pruning or merging (compress/reduce_model.h).
#include <cstdio>
#include <limits>

#include "cli/commands.h"
#include "cli/common.h"
#include "compress/reduce_model.h"
#include "core/error.h"

namespace mcmoe::cli {

int cmd_reduce(const Argv& argv) {
  static const CommandSpec spec{
      "reduce", "fewer experts: REAP pruning, M-SMoE merging or HC-SMoE-style clustering",
      with_groups(
          {kModelFlag,
           {"-o", "OUT.gguf", "", "the reduced model"},
           {"--method", "merge|prune|frequency|cluster", "",
            "required: merge (M-SMoE), prune (REAP saliency), frequency (least routed dropped) or "
            "cluster (HC-SMoE-style)"},
           {"--keep", "F", "0.75",
            "fraction of experts kept, in (0, 1] (a merged group counts as one)"},
           {"--per-layer", "adaptive|uniform", "adaptive",
            "adaptive: one threshold across layers, so counts differ; uniform: the same count in "
            "each layer"},
           kThreadsFlag},
          {calibration_flag_table({.samples = "32"}), {kCalibrationCtxFlag}, load_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  const std::string text_path = a.required("-f", "calibration text file");
  const std::string out = a.required("-o", "output GGUF file");
  compress::ReduceOptions o;
  o.method = compress::reduce_method_from_name(a.required("--method", "reduction method (merge, prune, frequency or cluster)"));
  // Range checked by the library, whose message names the flag and the allowed interval.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  o.keep = a.number("--keep", 0.75, -kInf, kInf);
  compress::check_keep(o.keep);
  const std::string per_layer = a.str("--per-layer", "adaptive");
  if (per_layer != "adaptive" && per_layer != "uniform") {
    fail("--per-layer: '{}' is not adaptive or uniform", per_layer);
  }
  o.adaptive = per_layer == "adaptive";
  o.sampling.samples = static_cast<int>(a.integer("--samples", o.sampling.samples, 1, 1 << 20));
  calibration_length_flag(a);  // refuses --ctx, the other commands' name for a context
  o.sampling.seq = static_cast<int>(a.integer("--seq", o.sampling.seq, 2, 1 << 20));
  o.threads = threads_flag(a);
  auto m = load_model_verbose(path, load_options_flags(a));
  const std::string text = read_text_file(text_path);
  Progress progress("reduce");
  o.progress = [&](int layer, int n_layer, const std::string& what) {
    progress.update(layer, n_layer, layer < n_layer ? fmt::format("layer {} {}", layer, what) : what);
  };
  const compress::ReduceReport r = compress::reduce_model(*m, text, text_path, o, out);
  progress.finish();
  const bool merging = compress::reduce_merges(o.method);
  std::printf("%s, keep %.3g (%s): %s per layer\n", compress::reduce_method_name(o.method), o.keep, per_layer.c_str(),
              merging ? "experts after merging" : "experts kept");
  for (size_t l = 0; l < r.groups.size(); ++l) {
    if (r.groups[l].empty()) {
      std::printf("  layer %2zu: dense, nothing to reduce\n", l);
      continue;
    }
    std::printf("  layer %2zu: %d of %zu |", l, r.layer_experts[l], r.groups[l].size());
    for (size_t e = 0; e < r.groups[l].size(); ++e) {
      if (r.groups[l][e] < 0) {
        std::printf("  -");
      } else {
        std::printf(" %2d", r.groups[l][e]);
      }
    }
    std::printf("  (new index of each expert%s)\n", merging ? "; equal indices were merged" : "; - pruned");
  }
  std::printf("parameters %lld -> %lld (%.1f%%)\n", static_cast<long long>(r.params_before),
              static_cast<long long>(r.params_after), 100.0 * r.params_after / std::max<int64_t>(1, r.params_before));
  std::printf("wrote %s: %.2f MiB in %.1f s\n", out.c_str(), r.file_bytes / 1048576.0, r.seconds);
  return 0;
}

}  // namespace mcmoe::cli
