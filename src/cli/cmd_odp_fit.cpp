// mcmoe odp-fit: per-layer ODP thresholds within a KL budget, measured on calibration text
// (eval/odp_fit.h); run, ppl, bench and serve read them with --odp --odp-thresholds FILE.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "compress/layer_stream.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/odp_fit.h"

namespace mcmoe::cli {

int cmd_odp_fit(const Argv& argv) {
  static const CommandSpec spec{
      "odp-fit", "ODP thresholds per layer that keep the predicted KL increase within a budget",
      with_groups(
          {kModelFlag,
           {"-f", "TEXT", "", "calibration text"},
           {"-o", "THRESHOLDS.json", "", "where to write the thresholds"},
           {"--kl-budget", "X", "",
            "allowed mean KL increase per token over the model without ODP, nats"},
           {"--samples", "N", "8", "calibration windows, spread evenly over the text"},
           {"--seq", "N", "512", "tokens per window (BOS included)"},
           {"--quantiles", "0.1,...", "0.1,0.2,...,0.9",
            "candidate thresholds: these quantiles of each layer's routing-weight ratios"},
           {"--odp-protect", "F", "0.02", "share of each window's tokens protected from pruning"},
           kThreadsFlag},
          {load_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  const std::string text_path = a.required("-f", "calibration text file");
  const std::string out = a.required("-o", "output thresholds file");
  eval::OdpFitOptions o;
  if (!a.has("--kl-budget"))
    fail("odp-fit: --kl-budget X is required (mean KL increase per token, nats)");
  o.kl_budget = a.number("--kl-budget", 0.001, 0, 100);
  if (a.has("--quantiles")) {
    o.quantiles.clear();
    for (const std::string& q : split_list(a.str("--quantiles", ""), "--quantiles")) {
      char* end = nullptr;
      const double v = std::strtod(q.c_str(), &end);
      if (end == q.c_str() || *end != '\0' || !(v > 0 && v < 1))
        fail("--quantiles: '{}' is not a number in (0, 1)", q);
      o.quantiles.push_back(v);
    }
  }
  o.protect_fraction = a.number("--odp-protect", 0.02, 0, 1);
  o.threads = threads_flag(a);
  compress::SampleOptions so;
  so.samples = static_cast<int>(a.integer("--samples", 8, 1, 1 << 20));
  so.seq = static_cast<int>(a.integer("--seq", 512, 2, 1 << 20));
  auto m = load_model_verbose(path, load_options_flags(a));
  const auto windows = compress::sample_windows(*m, read_text_file(text_path), text_path, so);
  Progress progress("odp-fit");
  o.progress = [&](int64_t done, int64_t total) { progress.update(done, total, "window passes"); };
  const eval::OdpFitResult r = eval::fit_odp(*m, windows, o);
  progress.finish();

  std::printf(
      "KL increase (x1e-3) and share of the layer's activations pruned, ODP in one layer at a "
      "time:\n");
  std::printf("layer");
  for (double q : r.quantiles) std::printf("   q=%.2f       ", q);
  std::printf(" chosen\n");
  nlohmann::json layers = nlohmann::json::array();
  for (const eval::OdpFitLayer& L : r.layers) {
    std::printf("%5d", L.layer);
    nlohmann::json measured = nlohmann::json::array();
    for (size_t qi = 0; qi < r.quantiles.size(); ++qi) {
      std::printf("  %6.3f %5.1f%%%s", 1e3 * L.kl[qi], 100 * L.pruned[qi],
                  static_cast<int>(qi) == L.chosen ? "*" : " ");
      measured.push_back({{"quantile", r.quantiles[qi]},
                          {"mu", L.mu[qi]},
                          {"kl", L.kl[qi]},
                          {"pruned", L.pruned[qi]}});
    }
    std::printf(L.chosen < 0 ? "  off\n" : "  q=%.2f\n",
                L.chosen < 0 ? 0.0 : r.quantiles[L.chosen]);
    nlohmann::json entry{{"layer", L.layer}, {"measured", measured}};
    entry["mu"] = L.chosen < 0 ? nlohmann::json() : nlohmann::json(L.mu[L.chosen]);
    layers.push_back(entry);
  }
  std::printf(
      "predicted: KL increase %.6f (budget %.6f), %.1f%% of all expert activations pruned\n",
      r.predicted_kl, o.kl_budget, 100 * r.predicted_pruned);
  const nlohmann::json j{{"format", "mcmoe-odp-thresholds"},
                         {"model", path},
                         {"text", text_path},
                         {"n_layer", m->config().n_layer},
                         {"k", m->config().n_expert_used},
                         {"kl_budget", o.kl_budget},
                         {"predicted_kl", r.predicted_kl},
                         {"predicted_pruned", r.predicted_pruned},
                         {"layers", layers}};
  write_file_atomically(out, j.dump(1) + "\n");
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace mcmoe::cli
