#pragma once
// `mcmoe quantize`: MC-MoE's pre-loading mixed-precision quantization (ALGORITHMS.md §1).
// Routed experts get the bit plan of compress/allocate.h; every other matrix of a decoder
// layer (model/inventory.h) gets the width of its role: attention --attn-bits, router
// --router-bits, shared experts and dense layers' MLPs --shared-bits; vectors (norms,
// biases, sinks) stay as stored. The weights are quantized layer by layer with GPTQ (or
// round-to-nearest), each layer calibrated on the outputs of the already quantized layers
// before it, each matrix's Hessian the Gram matrix of the intermediate it reads
// (TensorSlot::input); a matrix that reads no single intermediate (MLA's split attn_k_b /
// attn_v_b) is rounded to nearest. Experts are written one tensor per expert and projection
// (each expert's bytes adjacent), with the plan and ODP thresholds in the metadata.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "compress/allocate.h"
#include "compress/layer_stream.h"
#include "compress/stats.h"
#include "core/dtype.h"
#include "model/inventory.h"
#include "model/model.h"

namespace mcmoe::compress {

struct QuantizeModelOptions {
  AllocOptions alloc;
  // --worst-case: statistics of the same model on other text. Non-empty: the plan minimises
  // the largest regret over the main statistics and these (allocate_worst_case); GPTQ still
  // reads the main statistics' text.
  std::vector<CalibrationStats> other_domains;
  bool gptq = true;            // false: round-to-nearest everywhere
  int64_t group = 128;
  bool act_order = false;
  bool grid_search = true;     // least-squares clip search for each group's grid (QuantSpec::search)
  // GPTQ's dampening, a fraction of the Hessian's mean diagonal. 0.1, not GPTQ's usual 0.01:
  // at 0.01 the rounding fits the calibration text so closely that other text suffers (on
  // mixtral-tiny calibrated on WikiText, War and Peace's KL 0.040 against 0.028 at 0.1); 0.1
  // was better in 7 of 8 (model, calibration, evaluation) pairs and 5% worse in-domain in one
  // (bench/RESULTS.md §13).
  double damp = 0.1;
  // Routed experts' Hessians (issue 16): each routed row weighted by its gate value
  // (MoEQuant's affinity-weighted GPTQ), and blended with the layer's pooled routed rows
  // worth expert_prior tokens (0: none).
  bool affinity_hessian = false;
  double expert_prior = 0;
  int attn_bits = 4;           // attention projections (q, k, v, o; MLA's q_a, q_b, kv_a, kv_b)
  // 0: keep the router as stored. 8 by default: on mixtral-tiny's 2.5-bit model, 4-bit
  // routers changed the top-2 set of 3 points more tokens per layer (agreement 0.922 against
  // 0.950) and caused a fifth of its KL (0.0103 against 0.0082), for 0.2% of the file
  // (bench/RESULTS.md §13).
  int router_bits = 8;
  int shared_bits = 4;         // shared experts (and their gate) and dense layers' MLPs
  DType embd_type = DType::F16;  // token embeddings and output head: F16 or Q8_0
  // Ablation (--q8-layers): every matrix of these decoder layers at 8 bits (Q8_0), routed
  // experts included, whatever the plan; the KL a layer's quantization causes is the
  // model's KL minus the KL with that layer at 8 bits (bench/RESULTS.md §13).
  std::vector<int> q8_layers;
  SampleOptions sampling;      // GPTQ calibration windows
  int threads = 2;
  // (layer, n_layer, what); layer == n_layer when writing.
  std::function<void(int, int, const std::string&)> progress;
};

// The matrices of one role, as written.
struct RoleReport {
  int bits = 0;  // the width asked for; 0: kept as stored (and routed experts: see the plan)
  int64_t params = 0;
  uint64_t bytes = 0;  // scales and mins included
  double bits_per_weight() const {
    return params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
  }
};

struct QuantizeReport {
  BitPlan plan;
  std::map<model::TensorRole, RoleReport> roles;  // the decoder layers' matrices by role
  // Decoder linears: every matrix of the decoder layers (experts, attention, router, shared
  // experts, dense MLPs).
  int64_t expert_params = 0, linear_params = 0;
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
