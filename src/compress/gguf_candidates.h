#pragma once
// Inside compress/: the candidates of quantize_gguf's allocation. Each tensor (an Item) is
// quantized once to every candidate type, the bytes spilled to a scratch file beside the
// output and the error measured (Measurer); quantize_gguf.cpp then chooses one candidate per
// tensor under the byte budget and writes the file from the spill.
//
// With sampled rows (GgufQuantOptions::sample_rows) a decoder matrix's candidates are
// quantized on a random subset of its rows only. Rows are independent under GPTQ and under
// every ggml type (error feedback runs along a row's inputs, blocks never span rows), so each
// sampled row's error is the error that row has in the whole tensor's quantization, and
// (rows / sampled) times their sum is an unbiased estimate of the tensor's. Only the chosen
// type is then quantized in full (finish_part), in a second pass. --kl-cost's reference
// candidate is quantized over every row in the first pass: the KL of a few rows' perturbation
// does not scale to the whole tensor's (a few output dimensions can carry most of it, bench/
// RESULTS.md §11), so it is measured on the whole tensor as without sampling.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "compress/dense.h"
#include "compress/hessian.h"
#include "compress/quantize_gguf.h"
#include "compress/quantizers.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/inventory.h"

namespace mcmoe::compress::gguf {

inline bool is_float_type(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// Candidate bytes live in a scratch file beside the output until the allocation has chosen,
// so memory holds one tensor's candidates at a time, not every candidate of the model.
class Spill {
 public:
  explicit Spill(const std::string& out_path, const char* what = "candidates")
      : path_(out_path + "." + what + "." + std::to_string(::getpid())),
        f_(std::fopen(path_.c_str(), "wb")) {
    if (!f_) fail("{}: cannot create the scratch file for candidate tensors", path_);
  }
  ~Spill() {
    map_.reset();
    if (f_) std::fclose(f_);
    std::remove(path_.c_str());
  }
  Spill(const Spill&) = delete;
  Spill& operator=(const Spill&) = delete;

  uint64_t append(const std::vector<uint8_t>& b) {
    if (!b.empty() && std::fwrite(b.data(), 1, b.size(), f_) != b.size())
      fail("{}: write failed (disk full?) after {} bytes", path_, size_);
    const uint64_t at = size_;
    size_ += b.size();
    return at;
  }
  // The bytes written so far; no append after this.
  const uint8_t* data() {
    if (!map_) {
      if (std::fflush(f_) != 0) fail("{}: flush failed", path_);
      map_ = std::make_unique<MappedFile>(path_);
    }
    return map_->data();
  }
  uint64_t size() const { return size_; }

 private:
  std::string path_;
  std::FILE* f_;
  uint64_t size_ = 0;
  std::unique_ptr<MappedFile> map_;
};

// One candidate of one tensor: the bytes of each part (one per expert for a stacked expert
// tensor, else one) in the spill file, and the measured error. With sampled rows the parts
// hold the sampled rows' bytes only, and the error is the whole tensor's estimate; `bytes`
// is always the whole tensor's size.
struct Candidate {
  DType type;
  double error = 0;
  uint64_t bytes = 0;
  std::vector<std::pair<uint64_t, uint64_t>> parts;  // (offset, size) in the spill
};

// A tensor the allocation chooses a type for.
struct Item {
  std::string name;  // as written (stacked experts: blk.N.ffn_gate_exps.weight)
  int layer = -1;    // -1: token embeddings or output head
  model::TensorKind kind;
  int64_t params = 0;
  int64_t cols = 0;
  std::vector<Candidate> candidates;
  int chosen = -1;
  // The tensor's output energy on the calibration data, trace(W H Wᵀ) (the error of
  // quantizing every weight to 0): the scale its errors are reported against.
  double energy = 0;
  std::vector<float> means;  // the calibration's mean squared input per column (per part)
  bool partial = false;      // a part (an expert) had no calibration rows
  // Measured on sampled rows: every candidate but `full_reference` holds the sampled rows'
  // bytes and an estimated error; full_reference (>= 0 with --kl-cost, chosen before
  // measuring) is quantized over every row, so its KL can be measured on the whole tensor.
  bool sampled = false;
  int full_reference = -1;
  // The chosen type quantized over every row, per part, in the final spill (finish_part);
  // empty when the spill already holds it whole.
  std::vector<std::pair<uint64_t, uint64_t>> final_parts;
};

// The rows of a part with `rows` rows that candidates are measured on: max(ceil(fraction ·
// rows), min(rows, kMinSampledRows)) distinct rows drawn by a generator seeded from `seed`,
// ascending. fraction >= 1: every row.
inline constexpr int64_t kMinSampledRows = 64;
std::vector<int64_t> sample_rows(int64_t rows, double fraction, uint64_t seed);
// A seed from a tensor's name and part, the same on every build (FNV-1a).
uint64_t part_seed(const std::string& name, size_t part);

// The types a tensor with rows of `cols` may take, in the order asked.
std::vector<DType> fitting_types(const std::vector<DType>& types, int64_t cols);
// diag(H) / rows: each input's mean square, what llama.cpp's importance matrix holds.
std::vector<float> importance_of(const HessianAccumulator& h);

// Measures every candidate of one matrix (or one expert's slice of a stacked tensor):
//   h with rows            GPTQ (or rounding weighted by diag(H)), error trace(ΔW H ΔWᵀ);
//   `given` importance     rounding weighted by it, error under H = diag(given);
//   neither                rounding; error 0 from calibration text (no row reached the
//                          expert), or `fallback` · ‖ΔW‖² from an importance matrix.
class Measurer {
 public:
  Measurer(const GgufQuantOptions& o, Spill& spill, ThreadPool& pool, double fallback)
      : o_(o), spill_(spill), pool_(&pool), fallback_(fallback) {}

  // Adds the part to each of item's candidates, in order; on o.sample_rows of its rows when
  // `sample` (a decoder matrix; the embeddings and head are measured whole), except the
  // item's full_reference.
  void add_part(Item& item, const DenseMatrix& w, const HessianAccumulator* h,
                std::span<const float> given = {}, bool sample = false);
  // After the allocation, for an item measured on sampled rows: quantizes the part to the
  // chosen candidate's type over every row, under the same statistics as add_part, into
  // `out` (item.final_parts).
  void finish_part(Item& item, const DenseMatrix& w, const HessianAccumulator* h,
                   std::span<const float> given, Spill& out);
  // Seconds spent quantizing and measuring so far (the part that grows with the weights).
  double seconds() const { return seconds_; }
  // The pool of the pass now running (each pass over the calibration has its own session).
  void set_pool(ThreadPool& pool) { pool_ = &pool; }
  // Call when an accumulator the factor cache may point at is about to die.
  void forget_factor() { factor_of_ = nullptr; }

 private:
  // How a part is rounded under h: the per-column importance (`given` without calibration
  // rows) and GPTQ's factor of h (null without rows or with --rtn), made current.
  struct Rounding {
    std::vector<float> importance;
    const GptqFactor* factor;
  };
  Rounding prepare(const HessianAccumulator* h, std::span<const float> given);
  const GgufQuantOptions& o_;
  Spill& spill_;
  ThreadPool* pool_;
  double fallback_;
  const HessianAccumulator* factor_of_ = nullptr;
  GptqFactor factor_;
  double seconds_ = 0;
};

// Token embeddings: a row is looked up, not multiplied, so its error is ‖E_t − Q(E_t)‖²
// weighted by how often token t occurs in the calibration windows.
void measure_embeddings(Item& item, const TensorView& v, const std::vector<double>& counts,
                        const GgufQuantOptions& o, Spill& spill, ThreadPool& pool);

Item make_item(std::string name, int layer, model::TensorKind kind,
               const std::vector<int64_t>& shape, const std::vector<DType>& types, int experts = 1);

// Points item's views in `w` and `experts` (every expert's slice of a stacked tensor) at the
// bytes of `cand` in the spill starting at `base`. With tied embeddings the output head
// follows the token embeddings.
void place_candidate(const model::ModelConfig& c, const Item& item, const Candidate& cand,
                     const uint8_t* base, model::ModelWeights& w,
                     std::vector<std::vector<moe::ExpertWeights>>& experts);
// The same for any views: part p's view becomes view_of(p, its current view).
void place_views(const model::ModelConfig& c, const Item& item, size_t n_parts,
                 const std::function<TensorView(size_t, const TensorView&)>& view_of,
                 model::ModelWeights& w, std::vector<std::vector<moe::ExpertWeights>>& experts);

}  // namespace mcmoe::compress::gguf
