#pragma once
// `mcmoe quantize`: MC-MoE's pre-loading mixed-precision quantization (ALGORITHMS.md §1).
// The bit plan comes from compress/allocate.h; the weights are quantized layer by layer
// with GPTQ (or round-to-nearest), each layer calibrated on the outputs of the already
// quantized layers before it; experts are written one tensor per expert and projection
// (each expert's bytes adjacent), with the plan and ODP thresholds in the metadata.
#include <cstdint>
#include <functional>
#include <string>

#include "compress/allocate.h"
#include "compress/layer_stream.h"
#include "compress/stats.h"
#include "core/dtype.h"
#include "model/model.h"

namespace mcmoe::compress {

struct QuantizeModelOptions {
  AllocOptions alloc;
  bool gptq = true;            // false: round-to-nearest everywhere
  int64_t group = 128;
  bool act_order = false;
  bool grid_search = true;     // least-squares clip search for each group's grid (QuantSpec::search)
  double damp = 0.01;
  int attn_bits = 4;           // q, k, v, o and the shared expert (Qwen2-MoE)
  int router_bits = 4;         // 0: keep the router as stored
  DType embd_type = DType::F16;  // token embeddings and output head: F16 or Q8_0
  SampleOptions sampling;      // GPTQ calibration windows
  int threads = 2;
  // (layer, n_layer, what); layer == n_layer when writing.
  std::function<void(int, int, const std::string&)> progress;
};

struct QuantizeReport {
  BitPlan plan;
  int64_t expert_params = 0, linear_params = 0;  // decoder linears = experts + attention + router
  double expert_bits = 0;   // true bits per expert weight, scales and mins included
  double linear_bits = 0;   // the same over all decoder linears
  uint64_t file_bytes = 0;
  double seconds = 0;
};

// `m` is modified in place (its layers end up quantized). `text` is the calibration text
// (ignored for round-to-nearest).
QuantizeReport quantize_model(model::Model& m, const CalibrationStats& stats, const std::string& text,
                              const std::string& text_path, const QuantizeModelOptions& o,
                              const std::string& out_path);

// Metadata keys of a quantized file.
inline constexpr const char* kPlanKey = "mcmoe.quant.expert_bits";  // u8, each layer's experts in turn
inline constexpr const char* kOdpMuKey = "mcmoe.odp.mu";            // f32 [n_layer * (k - 1)]

}  // namespace mcmoe::compress
