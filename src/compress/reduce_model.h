#pragma once
// `mcmoe reduce`: fewer experts per layer, by pruning (REAP or frequency) or by merging
// (M-SMoE or HC-SMoE-style clustering), measured on calibration text in one layer-streamed
// pass of the original model (ALGORITHMS.md §4). The result is an ordinary mcmoe GGUF:
//   prune:  the kept experts and their router rows; layers may keep different counts
//           (adaptive), recorded in mcmoe.layer_expert_count. Uniform pruning of a file in
//           llama.cpp's layout stays loadable by llama.cpp.
//   merge:  the router keeps all rows; mcmoe.reduce.expert_map.L points each at its merged
//           expert, and the MoE block sums the gates of picks that land on one expert.
// Only routed experts are reduced: dense layers and shared experts are written as they are.
// Pruning removes an expert's router row with its router bias and selection bias (so it is
// refused for group-limited routing, whose groups must stay equal); merging keeps them all,
// and merges expert biases with their neurons (compress/expert_merge.h).
//
// Memory beyond the model: the residual streams of the samples (samples · seq · n_embd · 4
// bytes), per layer an n_expert² Gram matrix, for clustering up to 8192 block inputs, and
// the f32 copies of one merge group's experts.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/layer_stream.h"
#include "compress/reduce_plan.h"
#include "model/model.h"

namespace mcmoe::compress {

struct ReduceOptions {
  ReduceMethod method = ReduceMethod::kPrune;
  double keep = 0.75;     // fraction of experts kept (merged groups count as one)
  bool adaptive = true;   // one threshold across layers; false: the same count per layer
  SampleOptions sampling{.samples = 32, .seq = 512};
  int threads = 2;
  // (layer, n_layer, what); layer == n_layer when writing.
  std::function<void(int, int, const std::string&)> progress;
};

struct ReduceReport {
  std::vector<int> layer_experts;            // experts stored per layer afterwards
  std::vector<std::vector<int>> groups;      // [layer][original expert] → new expert (merged or kept); -1: pruned
  std::vector<std::vector<double>> scores;   // [layer][expert] the score that ranked experts
  int64_t params_before = 0, params_after = 0;  // all weights of the model
  uint64_t file_bytes = 0;
  double seconds = 0;
};

// Reads `m` (not modified) and writes the reduced model to out_path (temp file + rename).
ReduceReport reduce_model(model::Model& m, const std::string& text, const std::string& text_path,
                          const ReduceOptions& o, const std::string& out_path);

}  // namespace mcmoe::compress
