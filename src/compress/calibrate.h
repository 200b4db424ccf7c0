#pragma once
// `mcmoe calibrate`: one layer-streamed pass of the unquantized model over calibration
// text, measuring everything MC-MoE's bit allocation and ODP need (compress/stats.h). Only
// routed experts are measured: a dense layer (DeepSeek's and GLM's leading ones) gets empty
// statistics, shared experts none; a model with no MoE layer is refused.
//
// Memory: the residual streams of all samples (samples · seq · n_embd · 4 bytes), plus for
// the current layer every routed row's input and output (samples · seq · k · 2 · n_embd ·
// 4 bytes) and one expert's f32 working copy (3 · n_ff · n_embd · 4 bytes, twice). The
// model's weights are only read one layer at a time.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/layer_stream.h"
#include "compress/stats.h"
#include "model/model.h"

namespace mcmoe::compress {

struct CalibrateOptions {
  SampleOptions sampling;
  std::vector<int> candidates{1, 2, 3, 4};  // bit-widths whose ε is measured
  int64_t group = 128;                      // RTN group size for ε (the paper's)
  int threads = 2;
  // (layer, n_layer, what): called as each layer's work starts and ends.
  std::function<void(int, int, const std::string&)> progress = {};
};

// Bytes the pass holds beyond the model, by the formula above.
uint64_t calibration_memory_bytes(const model::ModelConfig& c, const SampleOptions& s);

CalibrationStats calibrate(model::Model& m, const std::string& text, const std::string& text_path,
                           const CalibrateOptions& o);

}  // namespace mcmoe::compress
