#include "compress/gguf_candidates.h"

#include <algorithm>

#include "quant/ggml_encode.h"
#include "quant/quantize.h"

namespace mcmoe::compress::gguf {

// The types a tensor with rows of `cols` may take, in the order asked.
std::vector<DType> fitting_types(const std::vector<DType>& types, int64_t cols) {
  std::vector<DType> out;
  for (DType t : types)
    if (cols % dtype_traits(t).block_size == 0) out.push_back(t);
  return out;
}

namespace {

// Quantizes the rows of w [rows, cols] to `type`: GPTQ when a factor is given, else ggml's
// round-to-nearest fit weighted by `importance` (per column; empty: ggml's default). Float
// types are plain conversions.
std::vector<uint8_t> quantize_rows(const DenseMatrix& w, DType type, const GptqFactor* factor,
                                   std::span<const float> importance, const GgufQuantOptions& o,
                                   ThreadPool& pool) {
  // Vector codebooks only with codebook_gptq (GgufQuantOptions): else block by block.
  if (factor && !is_float_type(type) && (o.codebook_gptq || !quant::is_vector_codebook(type))) {
    return quantize_gptq_ggml(w.data.data(), w.rows, w.cols, *factor, type, importance,
                              GptqOptions{.damp = o.damp, .pool = &pool});
  }
  const size_t rb = row_bytes(type, w.cols);
  std::vector<uint8_t> bytes(rb * static_cast<size_t>(w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    const float* src = w.data.data() + r * w.cols;
    if (is_float_type(type)) {
      quant::quantize_row(type, src, bytes.data() + r * rb, w.cols);
    } else {
      quant::quantize_row_ggml(type, src, bytes.data() + r * rb, w.cols,
                               importance.empty() ? nullptr : importance.data());
    }
  }
  return bytes;
}

// Σ_r Σ_j d_j (w_rj − q_rj)²: the output error under H = diag(d).
double diagonal_error(const DenseMatrix& w, const std::vector<float>& q, std::span<const float> d) {
  double total = 0;
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t j = 0; j < w.cols; ++j) {
      const double e = double{w.data[r * w.cols + j]} - q[r * w.cols + j];
      total += double{d[j]} * e * e;
    }
  }
  return total;
}

}  // namespace

// diag(H) / rows: each input's mean square, what llama.cpp's importance matrix holds.
std::vector<float> importance_of(const HessianAccumulator& h) {
  std::vector<float> d(static_cast<size_t>(h.cols()));
  const std::vector<double>& m = h.h();
  const double n = std::max<double>(1, static_cast<double>(h.count()));
  for (int64_t i = 0; i < h.cols(); ++i) d[i] = static_cast<float>(m[i * h.cols() + i] / n);
  return d;
}

void Measurer::add_part(Item& item, const DenseMatrix& w, const HessianAccumulator* h,
                        std::span<const float> given) {
  const bool calibrated = h && h->count() > 0;
  std::vector<float> importance(given.begin(), given.end());
  if (calibrated) {
    importance = importance_of(*h);
    if (o_.gptq && factor_of_ != h) {
      factor_ = gptq_factor(h->h(), h->cols(), o_.damp, false);
      factor_of_ = h;
    }
    item.means.insert(item.means.end(), importance.begin(), importance.end());
  } else {
    item.means.resize(item.means.size() + static_cast<size_t>(w.cols), 0.f);
    item.partial = true;
  }
  // The error of approximating w by q [rows, cols] under the statistics at hand (the table
  // above); the output energy is the same measure against all zeros.
  const std::vector<float> flat(static_cast<size_t>(w.cols), static_cast<float>(fallback_));
  auto error_of = [&](const std::vector<float>& q) {
    if (calibrated) return output_error(w.data.data(), q.data(), w.rows, w.cols, h->h());
    if (!given.empty()) return diagonal_error(w, q, given);
    return fallback_ > 0 ? diagonal_error(w, q, flat) : 0.0;
  };
  item.energy += error_of(std::vector<float>(static_cast<size_t>(w.rows * w.cols), 0.f));
  for (Candidate& c : item.candidates) {
    const std::vector<uint8_t> bytes =
        quantize_rows(w, c.type, calibrated && o_.gptq ? &factor_ : nullptr, importance, o_, pool_);
    c.error += error_of(quant::dequantize_rows(c.type, bytes.data(), w.rows, w.cols));
    c.parts.emplace_back(spill_.append(bytes), bytes.size());
    c.bytes += bytes.size();
  }
}

// Token embeddings: a row is looked up, not multiplied, so its error is ‖E_t − Q(E_t)‖²
// weighted by how often token t occurs in the calibration windows.
void measure_embeddings(Item& item, const TensorView& v, const std::vector<double>& counts,
                        const GgufQuantOptions& o, Spill& spill, ThreadPool& pool) {
  const DenseMatrix w = to_dense(v);
  for (Candidate& c : item.candidates) {
    const std::vector<uint8_t> bytes = quantize_rows(w, c.type, nullptr, {}, o, pool);
    const std::vector<float> q = quant::dequantize_rows(c.type, bytes.data(), w.rows, w.cols);
    for (int64_t r = 0; r < w.rows; ++r) {
      if (counts[r] == 0) continue;
      double e = 0;
      for (int64_t k = 0; k < w.cols; ++k) {
        const double d = double{w.data[r * w.cols + k]} - q[r * w.cols + k];
        e += d * d;
      }
      c.error += counts[r] * e;
      if (&c == &item.candidates.front()) {
        double x2 = 0;
        for (int64_t k = 0; k < w.cols; ++k)
          x2 += double{w.data[r * w.cols + k]} * w.data[r * w.cols + k];
        item.energy += counts[r] * x2;
      }
    }
    c.parts.emplace_back(spill.append(bytes), bytes.size());
    c.bytes = bytes.size();
  }
}

Item make_item(std::string name, int layer, model::TensorKind kind,
               const std::vector<int64_t>& shape, const std::vector<DType>& types, int experts) {
  Item it{.name = std::move(name), .layer = layer, .kind = kind};
  it.cols = shape.back();
  it.params = experts;
  for (int64_t x : shape) it.params *= x;
  for (DType t : fitting_types(types, it.cols)) it.candidates.push_back(Candidate{.type = t});
  return it;
}

void place_candidate(const model::ModelConfig& c, const Item& item, const Candidate& cand,
                     const uint8_t* base, model::ModelWeights& w,
                     std::vector<std::vector<moe::ExpertWeights>>& experts) {
  auto view_of = [&](const std::pair<uint64_t, uint64_t>& part, const std::vector<int64_t>& shape) {
    TensorView v;
    v.type = cand.type;
    v.shape = shape;
    v.data = base + part.first;
    v.nbytes = part.second;
    return v;
  };
  if (item.kind == model::TensorKind::TokenEmbd) {
    w.tok_embd = view_of(cand.parts.at(0), w.tok_embd.shape);
    if (c.tie_embeddings) w.output = w.tok_embd;
    return;
  }
  if (item.kind == model::TensorKind::Output) {
    w.output = view_of(cand.parts.at(0), w.output.shape);
    return;
  }
  size_t part = 0;
  model::for_each_layer_tensor(
      c, item.layer, w.layers[item.layer], experts[item.layer], [&](const model::TensorSlot& s) {
        if (s.kind != item.kind || !s.matrix) return;
        if (s.role != model::TensorRole::RoutedExpert && s.name != item.name) return;
        *s.view = view_of(cand.parts.at(part++), s.view->shape);
      });
  if (part != cand.parts.size())
    fail("internal: quantize_gguf: tensor '{}' has {} parts, {} placed", item.name,
         cand.parts.size(), part);
}

}  // namespace mcmoe::compress::gguf
