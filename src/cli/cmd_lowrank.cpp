// mcmoe lowrank: expert matrices as low-rank plus sparse rows, MC-SMoE's second stage
// without training (compress/lowrank.h).
#include <climits>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "compress/lowrank.h"
#include "core/error.h"

namespace mcmoe::cli {

int cmd_lowrank(const Argv& argv) {
  static const CommandSpec spec{
      "lowrank", "expert matrices as low-rank factors plus sparse rows (MC-SMoE without training)",
      with_groups(
          {kModelFlag,
           {"-o", "OUT.gguf", "", "the factored model"},
           {"--rank", "R", "", "required: rank of the factors L [n_out, R] and R [R, n_in]"},
           {"--sparse-rows", "S", "0",
            "rows of the residual W - LR kept exactly (those that matter most on the text)"},
           {"--type", "f16|q8_0|f32", "f16", "type of the factors and sparse rows"},
           {"--svd", "plain|whitened", "plain",
            "plain: best fit to the weights; whitened: best fit to the outputs on the calibration "
            "inputs (SVD-LLM)"},
           kThreadsFlag},
          {calibration_flag_table({}), {kCalibrationCtxFlag}, load_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  const std::string text_path = a.required("-f", "calibration text file");
  const std::string out = a.required("-o", "output GGUF file");
  a.required("--rank", "rank of the factors L [n_out, rank] and R [rank, n_in]");
  compress::LowRankOptions o;
  // Wide bounds here: the library checks rank and rows against the model's matrix shapes.
  o.factor.rank = a.integer("--rank", 0, LLONG_MIN, LLONG_MAX);
  o.factor.sparse_rows = a.integer("--sparse-rows", 0, LLONG_MIN, LLONG_MAX);
  const std::string type = a.str("--type", "f16");
  const auto t = dtype_from_name(type);
  if (!t) fail("--type: unknown type '{}' (expected f16, q8_0 or f32)", type);
  o.factor.type = *t;
  const std::string svd = a.str("--svd", "plain");
  if (svd != "plain" && svd != "whitened") fail("--svd: unknown '{}' (expected plain or whitened)", svd);
  o.factor.whitened = svd == "whitened";
  o.sampling.samples = static_cast<int>(a.integer("--samples", 64, 1, 1 << 20));
  calibration_length_flag(a);  // refuses --ctx, the other commands' name for a context
  o.sampling.seq = static_cast<int>(a.integer("--seq", 512, 2, 1 << 20));
  o.threads = threads_flag(a);
  auto m = load_model_verbose(path, load_options_flags(a));
  compress::check_lowrank_options(*m, o.factor);  // before reading the text: fail fast
  const std::string text = read_text_file(text_path);
  Progress progress("lowrank");
  o.progress = [&](int layer, int n_layer, const std::string& what) {
    progress.update(layer, n_layer, layer < n_layer ? fmt::format("layer {} {}", layer, what) : what);
  };
  const compress::LowRankReport r = compress::lowrank_model(*m, text, text_path, o, out);
  progress.finish();
  const char* names[3] = {"gate", "up", "down"};
  std::printf("rank %lld, %lld sparse rows, factors in %s, %s SVD\n", static_cast<long long>(o.factor.rank),
              static_cast<long long>(o.factor.sparse_rows), type.c_str(), svd.c_str());
  std::printf("relative error ||W - (LR + S)|| / ||W||, mean over experts (input-norm weighted in brackets):\n");
  for (int p = 0; p < 3; ++p) std::printf("  %-5s %.4f (%.4f)\n", names[p], r.rel_error[p], r.weighted_error[p]);
  std::printf("expert parameters %lld of %lld dense (%.1f%%); model parameters %lld\n",
              static_cast<long long>(r.expert_params), static_cast<long long>(r.dense_expert_params),
              100.0 * r.expert_params / std::max<int64_t>(1, r.dense_expert_params), static_cast<long long>(r.model_params));
  if (r.expert_params >= r.dense_expert_params) {
    std::fprintf(stderr, "note: at rank %lld the factored experts are not smaller than the dense ones\n",
                 static_cast<long long>(o.factor.rank));
  }
  std::printf("wrote %s: %.2f MiB in %.1f s\n", out.c_str(), r.file_bytes / 1048576.0, r.seconds);
  return 0;
}

}  // namespace mcmoe::cli
