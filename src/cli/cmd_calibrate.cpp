// mcmoe calibrate: routing statistics and per-expert reconstruction errors for bit
// allocation (compress/calibrate.h).
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "compress/calibrate.h"
#include "core/error.h"

namespace mcmoe::cli {

int cmd_calibrate(const Argv& argv) {
  static const CommandSpec spec{
      "calibrate",
      "routing statistics and per-expert quantization errors, for quantize's bit allocation",
      with_groups(
          {kModelFlag,
           {"-o", "STATS.json", "", "where to write the statistics"},
           {"--candidates", "1,2,3,4", "1,2,3,4",
            "bit-widths whose reconstruction error is measured"},
           {"--group", "N", "128", "quantization group size of the measured errors (32 to 128)"},
           kThreadsFlag},
          {calibration_flag_table({}), {kCalibrationCtxFlag}, load_flag_table()})};
  const Args a(argv, spec);
  calibration_length_flag(a);  // refuses --ctx, the other commands' name for a context
  const std::string path = a.required("-m", "model path");
  const std::string text_path = a.required("-f", "calibration text file");
  const std::string out = a.required("-o", "output statistics file");
  compress::CalibrateOptions o;
  o.sampling.samples = static_cast<int>(a.integer("--samples", 64, 1, 1 << 20));
  o.sampling.seq = static_cast<int>(a.integer("--seq", 512, 2, 1 << 20));
  o.candidates = parse_int_list(a.str("--candidates", "1,2,3,4"), "--candidates");
  o.group = a.integer("--group", 128, 32, 128);
  o.threads = threads_flag(a);
  auto m = load_model_verbose(path, load_options_flags(a));
  const std::string text = read_text_file(text_path);
  std::fprintf(stderr, "calibrate: %d samples x %d tokens; working memory about %.1f MiB beyond the model\n",
               o.sampling.samples, o.sampling.seq,
               compress::calibration_memory_bytes(m->config(), o.sampling) / 1048576.0);
  Progress progress("calibrate");
  o.progress = [&](int layer, int n_layer, const std::string& what) {
    progress.update(layer, n_layer, fmt::format("layer {} {}", layer, what));
  };
  const compress::CalibrationStats st = compress::calibrate(*m, text, text_path, o);
  progress.finish();
  compress::save_stats(st, out);
  // A compact summary: per layer, the spread of frequency and of the 2-bit error, and μ.
  std::printf("layer  tokens   phi min..max    eps(2b) min..max     mu (median p2/p1)\n");
  for (size_t l = 0; l < st.layers.size(); ++l) {
    const compress::LayerStats& L = st.layers[l];
    if (L.experts.empty()) {
      std::printf("%5zu   dense layer: no routed experts\n", l);
      continue;
    }
    double pmin = 1, pmax = 0, emin = 1e300, emax = 0;
    for (int e = 0; e < static_cast<int>(L.experts.size()); ++e) {
      pmin = std::min(pmin, L.phi(e));
      pmax = std::max(pmax, L.phi(e));
      const auto it = L.experts[e].eps.find(2);
      if (it != L.experts[e].eps.end()) {
        emin = std::min(emin, it->second);
        emax = std::max(emax, it->second);
      }
    }
    const float mu = L.ratio_quantiles.empty() ? 0.f : L.ratio_quantiles[0][50];
    std::printf("%5zu %7lld   %.3f..%.3f    %9.3g..%-9.3g    %.3f\n", l, static_cast<long long>(L.tokens), pmin, pmax,
                emin == 1e300 ? 0.0 : emin, emax, mu);
  }
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace mcmoe::cli
