#pragma once
// Inside compress/: `quantize --format gguf --kl-cost N`, the allocation's costs calibrated by
// measurement.
//
// The output error trace(ΔW H ΔWᵀ) ranks one tensor's candidates well (it falls steeply and
// monotonically with the type), but it does not compare tensors: on mixtral-tiny its log has
// a Spearman correlation of −0.10 with the KL each tensor causes alone at q2_K (16 tensors,
// bench/RESULTS.md §11). An input that is small (layer 0's attn_output) gives a small output
// error and yet a large KL; the embeddings' error is in other units altogether. So each
// tensor is quantized alone to one reference candidate, every other tensor left as stored, and
// the mean KL of the model's next-token distributions to the unquantized model's is measured
// on calibration windows. The tensor's errors are then scaled so the reference costs that KL:
//   cost(t, type) = KL_t · error(t, type) / error(t, reference),
// so within a tensor the costs keep the measured error's ratios (KL is second order in a
// small perturbation, as the output error is), and across tensors they are in nats.
// The reference is the candidate whose bits per weight are closest to the budget's average,
// where the allocation's decisions are made. Costs one forward pass over the windows for the
// base logits and one per tensor and window; memory holds one window's base logits.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "compress/gguf_candidates.h"
#include "model/model.h"

namespace mcmoe::compress::gguf {

struct TensorKl {
  int reference = -1;  // the candidate measured; -1: none could be (float candidates only)
  double kl = 0;       // mean KL per token with this tensor alone at the reference, nats
};

// The reference of each item: among its quantized candidates with a positive error, the one
// whose bits per weight are closest to `target_bpw` (the smaller on a tie); -1 if none.
// measured = false: before any error is known (the candidate to quantize whole when the others
// are measured on sampled rows).
int kl_reference(const Item& item, double target_bpw, bool measured = true);

// Measures TensorKl for every item: the model is restored after each. An item measured on
// sampled rows is measured at its full_reference (the one candidate it has whole). `base` is the
// spill's data (the candidates' bytes); windows are token sequences, BOS first.
std::vector<TensorKl> measure_tensor_kl(model::Model& m, const std::vector<Item>& items,
                                        const uint8_t* base,
                                        std::span<const std::vector<int32_t>> windows,
                                        double target_bpw, int threads,
                                        const std::function<void(int64_t, int64_t)>& progress);

// cost[i][j] = kl[i].kl · error(i, j) / error(i, reference). An item with no reference keeps
// its errors scaled by the median KL-per-error of the others (1 if there is none).
std::vector<std::vector<double>> kl_scaled_costs(const std::vector<Item>& items,
                                                 const std::vector<TensorKl>& kl);

}  // namespace mcmoe::compress::gguf
