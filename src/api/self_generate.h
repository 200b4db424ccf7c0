#pragma once
// Calibration text the model writes itself (`calibrate --self-generate N`, issue 16), after
// MoEQuant's expert-balanced self-sampling (EBSS): sequences are sampled from BOS (or from
// BOS and a short seed the user gives, e.g. a few words of the target domain), and at
// each step the model tries a few sampled candidates and keeps the one whose routing
// brings the experts still short of a minimum token count the most tokens. A user with no
// text from the target domain then calibrates on text every expert has seen, instead of
// on a domain that starves some experts (bench/RESULTS.md §3: the experts a domain rarely
// uses are the ones PMQ cuts to 1 bit).
//
// The counts are the routing of the generated tokens in the sequences as generated;
// calibration later cuts its own windows from the text, so its counts differ a little.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "api/generate.h"
#include "model/model.h"

namespace mcmoe::api {

struct SelfGenerateOptions {
  int64_t tokens = 0;             // tokens in all, BOS included
  int seq = 512;                  // tokens per sequence, BOS included
  int64_t min_expert_tokens = 0;  // per routed expert and layer; 0: plain sampling
  int candidates = 4;             // sampled candidates tried per step while an expert is short
  // Token ids each sequence starts with after BOS, one seed per sequence in turn (cut to
  // seq - 2 tokens, so one is generated); empty: BOS alone. Seed tokens are part of the
  // text and its counts.
  std::vector<std::vector<int32_t>> seeds;
  SamplerParams sampler{.temperature = 1.0f, .top_k = 0, .top_p = 0.95f, .seed = 1};
  int threads = 2;
  // (tokens done, tokens in all, experts still short of the minimum).
  std::function<void(int64_t, int64_t, int64_t)> progress;
};

struct ExpertRef {
  int layer = 0, expert = 0;
  int64_t tokens = 0;  // what it got
};

struct SelfGenerateResult {
  std::vector<std::vector<int32_t>> sequences;  // BOS first; a sequence ends early at EOS
  std::string text;                             // the sequences decoded, one blank line apart
  std::vector<std::vector<int64_t>>
      counts;  // [n_layer][experts(l)]: routed tokens; a dense layer has none
  std::vector<ExpertRef> short_of_minimum;  // experts that got fewer than the minimum
  int64_t forwards = 0;                     // single-token forward passes, candidates included
};

SelfGenerateResult self_generate(model::Model& m, const SelfGenerateOptions& o);

}  // namespace mcmoe::api
