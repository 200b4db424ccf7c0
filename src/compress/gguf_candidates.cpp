#include "compress/gguf_candidates.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "core/clock.h"
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
  // Rows are independent: the pool's threads take chunks of them (the same bytes). A row that
  // fails (a value that is not finite) ends its chunk; the pool rethrows the lowest chunk's
  // error, the one a serial loop would report.
  pool.parallel_for(w.rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = w.data.data() + r * w.cols;
      if (is_float_type(type)) {
        quant::quantize_row(type, src, bytes.data() + r * rb, w.cols);
      } else {
        quant::quantize_row_ggml(type, src, bytes.data() + r * rb, w.cols,
                                 importance.empty() ? nullptr : importance.data());
      }
    }
  });
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

std::vector<int64_t> sample_rows(int64_t rows, double fraction, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(std::max<int64_t>(rows, 0)));
  std::iota(all.begin(), all.end(), int64_t{0});
  if (fraction >= 1) return all;
  const int64_t n =
      std::min(rows, std::max(static_cast<int64_t>(std::ceil(fraction * static_cast<double>(rows))),
                              std::min(rows, kMinSampledRows)));
  // A partial Fisher-Yates shuffle: the first n of a uniformly random permutation.
  std::mt19937_64 gen(seed);
  for (int64_t i = 0; i < n; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, rows - 1);
    std::swap(all[i], all[pick(gen)]);
  }
  all.resize(static_cast<size_t>(n));
  std::sort(all.begin(), all.end());
  return all;
}

uint64_t part_seed(const std::string& name, size_t part) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  for (int i = 0; i < 8; ++i) h = (h ^ ((part >> (8 * i)) & 0xff)) * 1099511628211ull;
  return h;
}

// diag(H) / rows: each input's mean square, what llama.cpp's importance matrix holds.
std::vector<float> importance_of(const HessianAccumulator& h) {
  std::vector<float> d(static_cast<size_t>(h.cols()));
  const std::vector<double>& m = h.h();
  const double n = std::max<double>(1, static_cast<double>(h.count()));
  for (int64_t i = 0; i < h.cols(); ++i) d[i] = static_cast<float>(m[i * h.cols() + i] / n);
  return d;
}

Measurer::Rounding Measurer::prepare(const HessianAccumulator* h, std::span<const float> given) {
  if (!h || h->count() == 0) return {.importance = {given.begin(), given.end()}, .factor = nullptr};
  if (o_.gptq && factor_of_ != h) {
    factor_ = gptq_factor(h->h(), h->cols(), o_.damp, false);
    factor_of_ = h;
  }
  return {.importance = importance_of(*h), .factor = o_.gptq ? &factor_ : nullptr};
}

void Measurer::add_part(Item& item, const DenseMatrix& w, const HessianAccumulator* h,
                        std::span<const float> given, bool sample) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool calibrated = h && h->count() > 0;
  const Rounding r = prepare(h, given);
  if (calibrated) {
    item.means.insert(item.means.end(), r.importance.begin(), r.importance.end());
  } else {
    item.means.resize(item.means.size() + static_cast<size_t>(w.cols), 0.f);
    item.partial = true;
  }
  // The rows measured: all, or a sample whose errors stand for the whole part's.
  const bool sampling = sample && o_.sample_rows < 1;
  DenseMatrix sampled;
  double scale = 1;
  if (sampling) {
    const std::vector<int64_t> rows = sample_rows(
        w.rows, o_.sample_rows,
        part_seed(item.name, item.candidates.empty() ? 0 : item.candidates[0].parts.size()));
    sampled.rows = static_cast<int64_t>(rows.size());
    sampled.cols = w.cols;
    sampled.data.resize(static_cast<size_t>(sampled.rows * w.cols));
    for (size_t i = 0; i < rows.size(); ++i)
      std::copy_n(w.data.data() + rows[i] * w.cols, w.cols, sampled.data.data() + i * w.cols);
    scale = static_cast<double>(w.rows) / static_cast<double>(sampled.rows);
    item.sampled = true;
  }
  // The error of approximating m by q [rows, cols] under the statistics at hand (the table
  // above); the output energy is the same measure against all zeros.
  const std::vector<float> flat(static_cast<size_t>(w.cols), static_cast<float>(fallback_));
  auto error_of = [&](const DenseMatrix& m, const std::vector<float>& q) {
    if (calibrated) return output_error(m.data.data(), q.data(), m.rows, m.cols, h->h(), pool_);
    if (!given.empty()) return diagonal_error(m, q, given);
    return fallback_ > 0 ? diagonal_error(m, q, flat) : 0.0;
  };
  const DenseMatrix& measured = sampling ? sampled : w;
  item.energy += scale * error_of(measured, std::vector<float>(measured.data.size(), 0.f));
  for (size_t j = 0; j < item.candidates.size(); ++j) {
    Candidate& c = item.candidates[j];
    const bool whole = !sampling || static_cast<int>(j) == item.full_reference;
    const DenseMatrix& m = whole ? w : sampled;
    const std::vector<uint8_t> bytes = quantize_rows(m, c.type, r.factor, r.importance, o_, *pool_);
    c.error += (whole ? 1 : scale) *
               error_of(m, quant::dequantize_rows(c.type, bytes.data(), m.rows, m.cols));
    c.parts.emplace_back(spill_.append(bytes), bytes.size());
    c.bytes += row_bytes(c.type, w.cols) * static_cast<uint64_t>(w.rows);
  }
  seconds_ += seconds_since(t0);
}

void Measurer::finish_part(Item& item, const DenseMatrix& w, const HessianAccumulator* h,
                           std::span<const float> given, Spill& out) {
  if (item.chosen < 0)
    fail("internal: quantize_gguf: '{}' finished before a type was chosen", item.name);
  if (!item.sampled || item.chosen == item.full_reference) return;  // the spill holds it whole
  const auto t0 = std::chrono::steady_clock::now();
  const Rounding r = prepare(h, given);
  const Candidate& c = item.candidates[static_cast<size_t>(item.chosen)];
  const std::vector<uint8_t> bytes = quantize_rows(w, c.type, r.factor, r.importance, o_, *pool_);
  item.final_parts.emplace_back(out.append(bytes), bytes.size());
  seconds_ += seconds_since(t0);
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

void place_views(const model::ModelConfig& c, const Item& item, size_t n_parts,
                 const std::function<TensorView(size_t, const TensorView&)>& view_of,
                 model::ModelWeights& w, std::vector<std::vector<moe::ExpertWeights>>& experts) {
  if (item.kind == model::TensorKind::TokenEmbd) {
    w.tok_embd = view_of(0, w.tok_embd);
    if (c.tie_embeddings) w.output = w.tok_embd;
    return;
  }
  if (item.kind == model::TensorKind::Output) {
    w.output = view_of(0, w.output);
    return;
  }
  size_t part = 0;
  model::for_each_layer_tensor(
      c, item.layer, w.layers[item.layer], experts[item.layer], [&](const model::TensorSlot& s) {
        if (s.kind != item.kind || !s.matrix) return;
        if (s.role != model::TensorRole::RoutedExpert && s.name != item.name) return;
        if (part >= n_parts)
          fail("internal: quantize_gguf: tensor '{}' has more slots than its {} parts", item.name,
               n_parts);
        *s.view = view_of(part, *s.view);
        ++part;
      });
  if (part != n_parts)
    fail("internal: quantize_gguf: tensor '{}' has {} parts, {} placed", item.name, n_parts, part);
}

void place_candidate(const model::ModelConfig& c, const Item& item, const Candidate& cand,
                     const uint8_t* base, model::ModelWeights& w,
                     std::vector<std::vector<moe::ExpertWeights>>& experts) {
  place_views(
      c, item, cand.parts.size(),
      [&](size_t p, const TensorView& current) {
        TensorView v;
        v.type = cand.type;
        v.shape = current.shape;
        v.data = base + cand.parts[p].first;
        v.nbytes = cand.parts[p].second;
        return v;
      },
      w, experts);
}

}  // namespace mcmoe::compress::gguf
