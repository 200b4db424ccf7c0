// mcmoe calibrate: routing statistics and per-expert reconstruction errors for bit
// allocation (compress/calibrate.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "api/self_generate.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "compress/calibrate.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace mcmoe::cli {

namespace {

// --self-generate: the model's own text (api/self_generate.h), then the user's text if any;
// prints each layer's routed-token counts and the experts that stayed short.
std::string self_generate_text(const Args& a, model::Model& m, const compress::CalibrateOptions& co,
                               const std::string& user_text) {
  const model::ModelConfig& c = m.config();
  api::SelfGenerateOptions o;
  o.tokens = a.integer("--self-generate", 0, 2, int64_t{1} << 40);
  o.seq = co.sampling.seq;
  int max_experts = 0;
  for (int l = 0; l < c.n_layer; ++l)
    max_experts = std::max(max_experts, c.is_moe(l) ? c.experts(l) : 0);
  // Half of what each expert would get if routing were even.
  const int64_t even = max_experts > 0 ? o.tokens * c.n_expert_used / max_experts : 0;
  o.min_expert_tokens = a.integer("--min-expert-tokens", even / 2, 0, int64_t{1} << 40);
  o.candidates = static_cast<int>(a.integer("--steer-candidates", 4, 1, 64));
  o.sampler.temperature = static_cast<float>(a.number("--gen-temp", 1.0, 0.01, 100));
  o.sampler.top_p = static_cast<float>(a.number("--gen-top-p", 0.95, 0.01, 1));
  o.sampler.top_k = 0;
  o.sampler.seed = static_cast<uint64_t>(a.integer("--gen-seed", 1, 0, INT64_MAX));
  o.threads = co.threads;
  if (a.has("--gen-seeds")) {
    // One seed per non-empty line, tokenized as plain text (no BOS: generation adds it).
    const std::string path = a.str("--gen-seeds", "");
    std::istringstream lines(read_text_file(path));
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      std::vector<int32_t> ids = m.tokenizer().encode(line);
      if (!ids.empty()) o.seeds.push_back(std::move(ids));
    }
    if (o.seeds.empty()) fail("--gen-seeds {}: no non-empty line to start a sequence from", path);
  }
  std::fprintf(stderr,
               "calibrate: self-generating %lld tokens in sequences of %d, at least %lld per "
               "expert, %d candidates per step\n",
               static_cast<long long>(o.tokens), o.seq, static_cast<long long>(o.min_expert_tokens),
               o.candidates);
  Progress progress("self-generate");
  o.progress = [&](int64_t done, int64_t total, int64_t short_experts) {
    progress.update(done, total, fmt::format("{} experts short", short_experts));
  };
  const api::SelfGenerateResult r = api::self_generate(m, o);
  progress.finish();
  std::printf("self-generated %zu sequences, %lld forward passes; routed tokens per expert:\n",
              r.sequences.size(), static_cast<long long>(r.forwards));
  for (int l = 0; l < c.n_layer; ++l) {
    const std::vector<int64_t>& n = r.counts[l];
    if (n.empty()) continue;
    std::string row;
    if (n.size() <= 16) {
      for (int64_t v : n) row += fmt::format(" {}", v);
    } else {
      std::vector<int64_t> sorted = n;
      std::sort(sorted.begin(), sorted.end());
      row = fmt::format(" min {} median {} max {}", sorted.front(), sorted[sorted.size() / 2],
                        sorted.back());
    }
    std::printf("  layer %d:%s\n", l, row.c_str());
  }
  if (r.short_of_minimum.empty()) {
    std::printf("every expert got at least %lld tokens\n",
                static_cast<long long>(o.min_expert_tokens));
  } else {
    std::printf("%zu experts got fewer than %lld tokens:", r.short_of_minimum.size(),
                static_cast<long long>(o.min_expert_tokens));
    for (const api::ExpertRef& e : r.short_of_minimum)
      std::printf(" %d.%d (%lld)", e.layer, e.expert, static_cast<long long>(e.tokens));
    std::printf("\n");
  }
  return user_text.empty() ? r.text : r.text + "\n\n" + user_text;
}

}  // namespace

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
           {"--self-generate", "N", "",
            "the model writes N tokens of calibration text itself, expert-balanced (with -f: added "
            "to that text)"},
           {"--min-expert-tokens", "M", "half an even share",
            "self-generation steers until every expert of every layer got M tokens"},
           {"--steer-candidates", "C", "4",
            "self-generation: sampled tokens tried per step while an expert is short (1: no "
            "steering)"},
           {"--gen-temp", "T", "1", "self-generation: sampling temperature"},
           {"--gen-top-p", "P", "0.95", "self-generation: nucleus sampling threshold"},
           {"--gen-seed", "S", "1", "self-generation: sampling seed"},
           {"--gen-seeds", "FILE", "",
            "self-generation: each sequence starts from BOS and the next line of FILE (a few "
            "words of the target domain), in turn"},
           {"--save-text", "FILE", "STATS.json + .selfgen.txt",
            "self-generation: where the calibration text is written (the statistics refer to it)"},
           kThreadsFlag},
          {calibration_flag_table({}), {kCalibrationCtxFlag}, load_flag_table()})};
  const Args a(argv, spec);
  calibration_length_flag(a);  // refuses --ctx, the other commands' name for a context
  const std::string path = a.required("-m", "model path");
  std::string text_path = a.str("-f", "");
  const std::string out = a.required("-o", "output statistics file");
  const bool self_gen = a.has("--self-generate");
  if (text_path.empty() && !self_gen)
    fail("calibrate: give a calibration text (-f TEXT), --self-generate N, or both");
  for (const char* f : {"--min-expert-tokens", "--steer-candidates", "--gen-temp", "--gen-top-p",
                        "--gen-seed", "--gen-seeds", "--save-text"}) {
    if (a.has(f) && !self_gen) fail("{} applies to --self-generate only", f);
  }
  compress::CalibrateOptions o;
  o.sampling.samples = static_cast<int>(a.integer("--samples", 64, 1, 1 << 20));
  o.sampling.seq = static_cast<int>(a.integer("--seq", 512, 2, 1 << 20));
  o.candidates = parse_int_list(a.str("--candidates", "1,2,3,4"), "--candidates");
  o.group = a.integer("--group", 128, 32, 128);
  o.threads = threads_flag(a);
  if (self_gen && text_path.empty()) {
    // The windows are cut from the decoded text re-tokenized, which comes out a few percent
    // shorter than what was generated (pieces merge across the sampled tokens' boundaries).
    const int64_t need = int64_t{o.sampling.samples} * o.sampling.seq;
    const int64_t n = a.integer("--self-generate", 0, 2, int64_t{1} << 40);
    if (n < need + need / 10)
      fail(
          "--self-generate {}: --samples {} x --seq {} need {} tokens of text; generate at least "
          "{} (10% more, "
          "as the decoded text re-tokenizes a little shorter)",
          n, o.sampling.samples, o.sampling.seq, need, need + need / 10);
  }
  auto m = load_model_verbose(path, load_options_flags(a));
  std::string text = text_path.empty() ? std::string() : read_text_file(text_path);
  if (self_gen) {
    text = self_generate_text(a, *m, o, text);
    text_path = a.str("--save-text", out + ".selfgen.txt");
    write_file_atomically(text_path, text);
    std::fprintf(stderr, "calibrate: wrote the calibration text to %s (%zu bytes)\n",
                 text_path.c_str(), text.size());
  }
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
