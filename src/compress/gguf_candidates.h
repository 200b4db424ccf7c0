#pragma once
// Inside compress/: the candidates of quantize_gguf's allocation. Each tensor (an Item) is
// quantized once to every candidate type, the bytes spilled to a scratch file beside the
// output and the error measured (Measurer); quantize_gguf.cpp then chooses one candidate per
// tensor under the byte budget and writes the file from the spill.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
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
  explicit Spill(const std::string& out_path)
      : path_(out_path + ".candidates." + std::to_string(::getpid())),
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
// tensor, else one) in the spill file, and the measured error.
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
};

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
      : o_(o), spill_(spill), pool_(pool), fallback_(fallback) {}

  // Adds the part to each of item's candidates, in order.
  void add_part(Item& item, const DenseMatrix& w, const HessianAccumulator* h,
                std::span<const float> given = {});
  // Call when an accumulator the factor cache may point at is about to die.
  void forget_factor() { factor_of_ = nullptr; }

 private:
  const GgufQuantOptions& o_;
  Spill& spill_;
  ThreadPool& pool_;
  double fallback_;
  const HessianAccumulator* factor_of_ = nullptr;
  GptqFactor factor_;
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

}  // namespace mcmoe::compress::gguf
