#pragma once
// `mcmoe quantize --format gguf`: a GGUF in llama.cpp's own layout (stacked expert tensors)
// and ggml's own block types, so llama.cpp and everything built on it run the file unchanged.
//
// llama.cpp cannot give experts of one layer different types (they are one stacked tensor per
// projection), but it reads any type per tensor. So the unit of allocation is the tensor:
// every decoder matrix (attention, each stacked expert projection, shared experts, dense
// MLPs), the token embeddings and the output head. For each tensor and each candidate type
// the tensor is quantized (GPTQ on the type's own grid, quant/ggml_encode.h) and its output
// error measured on the calibration text:
//   a matrix          trace((W − Q) H (W − Q)ᵀ), H the Gram matrix of what it reads;
//   stacked experts   the same summed over the experts, each with the Gram matrix of the
//                     tokens routed to it (expert-aware Hessians);
//   token embeddings  Σ over calibration tokens of ‖E_t − Q(E_t)‖²;
// all with the unquantized model's activations. The types then come from an exact
// multiple-choice knapsack (the same dynamic programming as PMQ's allocation, here over
// tensor sizes in bytes): minimal summed error with the file no larger than the budget.
// Routers stay as stored (llama-quantize keeps them too); vectors (norms, biases) stay f32.
// With sample_rows < 1 the candidates of the decoder matrices are measured on a share of
// their rows and only the chosen types are quantized in full, in a second pass, which is what
// makes an allocation over many types affordable on a model of tens of billions of weights.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/layer_stream.h"
#include "core/dtype.h"
#include "model/model.h"

namespace mcmoe::compress {

struct GgufQuantOptions {
  // Candidate types. A tensor whose rows do not fill a type's blocks leaves that type out.
  std::vector<DType> types{DType::Q2_K, DType::Q3_K, DType::Q4_K,
                           DType::Q5_K, DType::Q6_K, DType::Q8_0};
  // The budget: the whole file's size in bytes, or else bits per weight over the allocated
  // tensors (scales and mins included).
  uint64_t size = 0;
  double bits = 0;
  // Not empty: every allocated tensor takes the type it has in this GGUF (a llama-quantize
  // output, say), so GPTQ rounding can be compared with llama.cpp's at identical types. No
  // allocation, no candidates, no budget.
  std::string types_from;
  // (pattern, type): a tensor whose name an ECMAScript regex matches (searched, as
  // llama-quantize's --tensor-type) takes that type and leaves the allocation; the first
  // matching pattern wins.
  std::vector<std::pair<std::string, DType>> tensor_types;
  // Not empty: llama.cpp's importance matrix (compress/imatrix.h) instead of calibration text.
  // No forward pass runs: each block is fitted by ggml's round-to-nearest weighted by the
  // file's means, and a tensor's error is Σ_j mean_j · ‖W_:j − Q_:j‖² (H taken as diagonal;
  // stacked experts with each expert's own means). A tensor the file lacks (llama-imatrix
  // drops experts no token reached) and the token embeddings weigh every weight by the
  // file's average mean.
  std::string imatrix;
  // Not empty: write the calibration's importance matrix here in llama.cpp's format, for
  // llama-quantize --imatrix (entries with an expert no token reached are left out, as
  // llama-imatrix does).
  std::string save_imatrix;
  // > 0: the allocation's costs calibrated by measurement (compress/gguf_kl_cost.h): each
  // tensor's KL at one reference type, measured alone on this many calibration windows
  // (spread over the calibration's), scales its output errors. Needs calibration text.
  int kl_cost_windows = 0;
  // Vector codebooks (iq2_xxs, iq3_xxs) with GPTQ (each 8 weights' codes chosen for their
  // fed-back values) rather than ggml-style rounding block by block weighted by diag(H). Off by
  // default: at IQ2_XXS's exact types on mixtral-tiny, calibrated on other text, GPTQ's held-
  // out KL was 9% higher (bench/RESULTS.md §11).
  bool codebook_gptq = false;
  bool gptq = true;  // false: ggml's round-to-nearest fit, weighted by diag(H) as an imatrix would
  double damp = 0.01;
  // < 1: each decoder matrix's candidates are measured on this share of its rows (at least 64;
  // each expert's slice drawn separately), and only the chosen type is quantized in full, in
  // a second pass over the calibration (compress/gguf_candidates.h says why the estimate is
  // unbiased). Cuts the time of an allocation over n candidates from about n full
  // quantizations to n · share + 1. The embeddings and output head are measured whole.
  double sample_rows = 1;
  SampleOptions sampling;
  int threads = 2;
  // (step, n_steps, what): one step per layer, then the head, then writing.
  std::function<void(int, int, const std::string&)> progress;
};

struct GgufTensorReport {
  std::string name;
  int64_t params = 0;
  DType type = DType::F32;
  uint64_t bytes = 0;
  double error = 0;
  double energy = 0;  // trace(W H Wᵀ): the output's own size, for relative errors
  // --kl-cost: the mean KL with this tensor alone at kl_type (-1: not measured), and the cost
  // the allocation used for the chosen type.
  double kl = -1;
  DType kl_type = DType::F32;
  double cost = 0;
  // Each candidate's (type, bytes, error), as measured.
  struct Candidate {
    DType type;
    uint64_t bytes;
    double error;
  };
  std::vector<Candidate> candidates;
};

struct GgufQuantReport {
  std::vector<GgufTensorReport> tensors;  // the allocated tensors, in file order
  uint64_t budget = 0;                    // bytes available to the allocated tensors
  uint64_t allocated_bytes = 0;           // what they take
  int64_t allocated_params = 0;
  uint64_t file_bytes = 0;
  double total_error = 0;
  double total_cost = 0;  // Σ of the chosen costs: the summed error, or KL-scaled with --kl-cost
  double seconds = 0;
  double measure_seconds = 0;  // statistics and candidates (the first pass over the layers)
  double finish_seconds = 0;   // the chosen types over every row, with sampled rows
  // Of all that, the time spent quantizing and measuring decoder matrices and the head (what
  // grows with the weights; the rest is forward passes, statistics and --kl-cost).
  double quantize_seconds = 0;
  std::vector<std::string> notes;
  double bits_per_weight() const {
    return allocated_params
               ? 8.0 * static_cast<double>(allocated_bytes) / static_cast<double>(allocated_params)
               : 0;
  }
};

GgufQuantReport quantize_gguf(model::Model& m, const std::string& text,
                              const std::string& text_path, const GgufQuantOptions& o,
                              const std::string& out_path);

// The exact solver: option j of item i costs cost[i][j] and takes bytes[i][j]; returns one
// option per item minimising Σ cost with Σ bytes ≤ budget. Sizes are counted in units of
// ceil(budget / 65536) bytes, rounded up, so the result always fits. Fails when even the
// smallest options do not fit.
std::vector<int> solve_byte_budget(const std::vector<std::vector<double>>& cost,
                                   const std::vector<std::vector<uint64_t>>& bytes,
                                   uint64_t budget);

}  // namespace mcmoe::compress
