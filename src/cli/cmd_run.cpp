#include <cstdio>
#include <nlohmann/json.hpp>

#include "api/generate.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

int cmd_run(const Argv& argv) {
  const Args a(argv, {"-m", "-p", "-f", "-n", "--temp", "--top-k", "--top-p", "--seed", "--threads", "--ctx"},
               {"--json"});
  const std::string path = a.required("-m", "model path");
  std::string text = a.has("-f") ? read_text_file(a.str("-f", "")) : a.required("-p", "prompt");
  const int n_predict = static_cast<int>(a.integer("-n", 64, 0, 1 << 20));
  api::SamplerParams sp;
  sp.temperature = static_cast<float>(a.number("--temp", 0.8, 0, 100));
  sp.top_k = static_cast<int>(a.integer("--top-k", 40, 0, 1 << 24));
  sp.top_p = static_cast<float>(a.number("--top-p", 0.95, 0, 1));
  sp.seed = static_cast<uint64_t>(a.integer("--seed", 0, 0, INT64_MAX));
  const bool json = a.has("--json");

  auto m = load_model_verbose(path);
  model::SessionOptions so;
  so.n_threads = threads_flag(a);
  so.n_ctx = static_cast<int>(a.integer("--ctx", 0, 0, 1 << 20));
  model::Session session(*m, so);
  const std::vector<int32_t> ids = prompt_ids(*m, text);
  api::Sampler sampler(sp);
  std::vector<int32_t> out;
  if (!json) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  const auto& tok = m->tokenizer();
  const api::GenerateStats st = api::generate(session, ids, n_predict, sampler, tok.eos_id(), [&](int32_t t) {
    out.push_back(t);
    if (!json && t != tok.eos_id()) {
      const std::string piece = tok.token_to_piece(t);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  if (json) {
    nlohmann::json j;
    j["prompt"] = text;
    j["prompt_ids"] = ids;
    j["new_ids"] = out;
    j["text"] = tok.decode(out);
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("\n");
  }
  std::fprintf(stderr, "prompt %lld tokens, %.1f tok/s | generated %lld tokens, %.2f tok/s | %d threads\n",
               static_cast<long long>(st.prompt_tokens), st.prompt_tokens / std::max(1e-9, st.prefill_seconds),
               static_cast<long long>(st.generated_tokens),
               st.generated_tokens > 1 ? (st.generated_tokens - 1) / std::max(1e-9, st.decode_seconds) : 0.0,
               so.n_threads);
  return 0;
}

}  // namespace mcmoe::cli
