#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/offload_flags.h"
#include "core/clock.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

int cmd_ppl(const Argv& argv) {
  static const CommandSpec spec{
      "ppl", "perplexity of a text, and KL divergence to a base model",
      with_groups(
          {kModelFlag,
           {"-f", "TEXT", "", "the text file"},
           {"--ctx", "N", "512", "window size"},
           {"--max-tokens", "N", "all", "score at most N tokens of the text"},
           {"--kl-base", "MODEL", "",
            "also measure KL divergence, top-1 agreement and routing agreement to this model"},
           {"--kl-base-cache-type", "T", "--cache-type", "the base model's KV cache type"},
           {"--json", nullptr, "", "print the result as JSON"}},
          {session_flag_table("ctx"), load_flag_table(), offload_flag_table(), odp_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  const std::string text_path = a.required("-f", "text file");
  const int ctx = static_cast<int>(a.integer("--ctx", 512, 2, 1 << 20));
  const int64_t max_tokens = a.integer("--max-tokens", 0, 0, INT64_MAX);
  // Each window is one batch unless --batch-size says otherwise: ODP's token protection ranks
  // the tokens of a batch, so chunking would change its scores.
  api::OpenModel om = api::open_model(open_options(a, path, ctx, ctx));
  model::Model* m = om.model.get();
  model::Session& session = *om.session;
  const std::string text = read_text_file(text_path);
  std::vector<int32_t> ids = m->tokenizer().encode(text);
  std::fprintf(stderr, "%s: %zu bytes, %zu tokens\n", text_path.c_str(), text.size(), ids.size());
  if (max_tokens > 0 && static_cast<int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<size_t>(max_tokens));
  // The base runs without ODP, and may keep its cache in another type: the same model with an
  // f32 cache as the base measures what a narrower cache costs.
  model::SessionOptions base_so = session_options(a, ctx, ctx);
  if (a.has("--kl-base-cache-type"))
    base_so.cache_type = cache_type_flag(a, "--kl-base-cache-type");
  std::unique_ptr<model::Model> base_model;
  std::unique_ptr<model::Session> base_session;
  if (a.has("--kl-base")) {
    base_model = load_model_verbose(a.str("--kl-base", ""), load_options_flags(a));
    if (base_model->tokenizer().encode(text) != m->tokenizer().encode(text)) {
      fail("ppl --kl-base: {} tokenizes the text differently from {}; KL needs the same tokens",
           base_model->path(), m->path());
    }
    base_session = std::make_unique<model::Session>(*base_model, base_so);
  }
  Progress progress("ppl");
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = eval::perplexity(session, ids, ctx, m->tokenizer().bos_id(), [&](int64_t done, int64_t total, double ppl) {
    progress.update(done, total, fmt::format("ppl {:.4f}", ppl));
  }, base_session.get());
  progress.finish();
  const double seconds = seconds_since(t0);
  if (om.odp) print_odp_summary(session.odp_counters());
  print_offload_stats(a, om.provider, r.tokens_scored, seconds,
                      om.session ? &om.session->cache_aware_counts() : nullptr);
  if (a.has("--json")) {
    nlohmann::json j{{"ppl", r.ppl}, {"tokens_scored", r.tokens_scored}, {"ctx", ctx}};
    if (r.has_base) {
      j["base_ppl"] = r.base_ppl;
      j["kl_mean"] = r.kl_mean;
      j["kl_p99"] = r.kl_p99;
      j["top1_agree"] = r.top1_agree;
    }
    if (r.has_routing) {
      nlohmann::json layers = nlohmann::json::array();
      for (size_t i = 0; i < r.route_layers.size(); ++i)
        layers.push_back({{"layer", r.route_layers[i]}, {"agree", r.route_agree[i]}});
      j["routing_agree"] = layers;
      j["routing_any_flip"] = r.route_any_flip;
    }
    if (om.odp) j["odp_pruned_fraction"] = session.odp_counters().pruned_fraction();
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("ppl %.4f over %lld tokens (%lld windows of ctx %d)\n", r.ppl,
                static_cast<long long>(r.tokens_scored), static_cast<long long>(r.windows), ctx);
    if (r.has_base) {
      std::printf("base ppl %.4f  KL(base||model) mean %.6f p99 %.6f  top-1 agreement %.4f\n",
                  r.base_ppl, r.kl_mean, r.kl_p99, r.top1_agree);
    }
    if (r.has_routing) {
      std::string per_layer;
      double sum = 0;
      for (size_t i = 0; i < r.route_layers.size(); ++i) {
        per_layer += fmt::format(" {}:{:.4f}", r.route_layers[i], r.route_agree[i]);
        sum += r.route_agree[i];
      }
      std::printf(
          "routing agreement with base (top-k set unchanged) mean %.4f, per layer%s\n"
          "tokens with a changed top-k set in any layer %.4f\n",
          sum / static_cast<double>(r.route_layers.size()), per_layer.c_str(), r.route_any_flip);
    } else if (r.has_base) {
      std::printf("routing agreement: not comparable (the models route different expert sets)\n");
    }
  }
  return 0;
}

}  // namespace mcmoe::cli
