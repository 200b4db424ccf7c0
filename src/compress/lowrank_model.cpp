// `mcmoe lowrank` over a whole model: calibration column norms per expert, layer by layer,
// each expert matrix factored (compress/lowrank.cpp), the result written per expert.
#include <chrono>
#include <filesystem>

#include "compress/hessian.h"
#include "compress/lowrank.h"
#include "core/clock.h"
#include "core/error.h"
#include "format/gguf.h"
#include "model/model_writer.h"

namespace mcmoe::compress {

namespace {

using format::GgufValue;

// Σ over calibration rows of x_j² for each input column of an expert's gate/up (its routed
// tokens) and of its down (its hidden activations); with `gram`, the whole Gram matrices.
class ColumnSquares final : public model::ForwardObserver {
 public:
  ColumnSquares(size_t n_expert, int64_t d, int64_t ff, bool gram)
      : in(n_expert, std::vector<double>(static_cast<size_t>(d))),
        hidden(n_expert, std::vector<double>(static_cast<size_t>(ff))), rows(n_expert, 0) {
    if (!gram) return;
    for (size_t e = 0; e < n_expert; ++e) {
      gram_in.emplace_back(d);
      gram_hidden.emplace_back(ff);
    }
  }
  std::vector<std::vector<double>> in, hidden;  // [n_expert][n_embd], [n_expert][n_ff]
  std::vector<int64_t> rows;                    // [n_expert] calibration rows seen
  std::vector<HessianAccumulator> gram_in, gram_hidden;  // [n_expert] when asked for

  void on_expert(const model::ExpertEvent& e) override {
    if (e.expert < 0 || e.expert >= static_cast<int>(in.size())) return;
    const auto n = static_cast<int64_t>(e.token_rows.size());
    add(in[e.expert], e.input, n, e.n_embd);
    add(hidden[e.expert], e.hidden, n, e.n_ff);
    rows[e.expert] += n;
    if (!gram_in.empty()) {
      gram_in[e.expert].add(e.input, n);
      gram_hidden[e.expert].add(e.hidden, n);
    }
  }

 private:
  static void add(std::vector<double>& acc, const float* x, int64_t n, int64_t cols) {
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t j = 0; j < cols; ++j) acc[j] += double{x[t * cols + j]} * x[t * cols + j];
    }
  }
};

// Column norms from sums of squares; an expert no calibration token reached gets all ones
// (importance falls back to the residual's plain row mass).
std::vector<double> norms(const std::vector<double>& squares, int64_t rows) {
  std::vector<double> n(squares.size(), 1.0);
  if (rows > 0) {
    for (size_t j = 0; j < n.size(); ++j) n[j] = std::sqrt(squares[j]);
  }
  return n;
}

}  // namespace

void check_lowrank_options(const model::Model& m, const FactorOptions& o) {
  const model::ModelConfig& c = m.config();
  bool any_expert = false;
  for (int l = 0; l < c.n_layer; ++l) any_expert |= c.experts(l) > 0;
  if (!any_expert) {
    fail(
        "{}: none of the model's {} layers has routed experts (a dense model); lowrank factors "
        "routed expert matrices",
        m.path(), c.n_layer);
  }
  const int64_t d = c.n_embd, ff = c.n_ff;
  const std::string shapes = fmt::format("expert matrices gate/up [{}, {}], down [{}, {}]", ff, d, d, ff);
  if (o.rank < 1) fail("--rank {}: must be at least 1 ({})", o.rank, shapes);
  if (o.rank > std::min(d, ff)) {
    fail("--rank {}: larger than the {} allow (their rank is at most {})", o.rank, shapes, std::min(d, ff));
  }
  if (o.sparse_rows < 0) fail("--sparse-rows {}: must be 0 or more", o.sparse_rows);
  if (o.sparse_rows > std::min(d, ff)) {
    fail("--sparse-rows {}: more than the {} rows of {} [{}, {}] ({})", o.sparse_rows, std::min(d, ff),
         d < ff ? "down" : "gate/up", d < ff ? d : ff, d < ff ? ff : d, shapes);
  }
  if (o.type != DType::F32 && o.type != DType::F16 && o.type != DType::Q8_0) {
    fail("--type {}: expected f16, q8_0 or f32", dtype_name(o.type));
  }
  const int64_t block = dtype_traits(o.type).block_size;
  if (o.rank % block != 0) {
    fail("--rank {}: --type {} stores the left factor's rows (rank wide) in blocks of {}; use a multiple of {} or --type f16",
         o.rank, dtype_name(o.type), block, block);
  }
  if (d % block != 0 || ff % block != 0) {
    fail("--type {}: {} are not multiples of its block size {}", dtype_name(o.type), shapes, block);
  }
}

LowRankReport lowrank_model(model::Model& m, const std::string& text, const std::string& text_path,
                            const LowRankOptions& o, const std::string& out_path) {
  const auto t0 = std::chrono::steady_clock::now();
  const model::ModelConfig& c = m.config();
  check_lowrank_options(m, o.factor);
  LowRankReport rep;
  LayerStream stream(m, sample_windows(m, text, text_path, o.sampling), o.threads);
  TensorStore store;
  int64_t n_matrices = 0;
  for (int l = 0; l < c.n_layer; ++l) {
    std::vector<moe::ExpertWeights> experts = m.stored_experts()[l];
    if (experts.empty()) {
      // A dense layer: nothing to factor (its MLP and shared experts stay dense); it only
      // moves the stream on.
      if (o.progress) o.progress(l, c.n_layer, "dense");
      if (l + 1 < c.n_layer) stream.run_layer(l, nullptr);
      continue;
    }
    if (o.progress) o.progress(l, c.n_layer, "inputs");
    ColumnSquares sq(std::max<size_t>(experts.size(), static_cast<size_t>(c.n_expert)), c.n_embd, c.n_ff,
                     o.factor.whitened);
    stream.observe_layer(l, &sq);
    if (o.progress) o.progress(l, c.n_layer, "factoring");
    for (size_t e = 0; e < experts.size(); ++e) {
      const DenseExpert dense = routed_expert_to_dense(c, experts[e]);
      const std::vector<double> in = norms(sq.in[e], sq.rows[e]), hid = norms(sq.hidden[e], sq.rows[e]);
      std::span<const double> g_in, g_hid;
      if (o.factor.whitened) {
        g_in = sq.gram_in[e].h();
        g_hid = sq.gram_hidden[e].h();
      }
      const FactoredMatrix parts[3] = {factor_matrix(dense.gate, in, o.factor, store, g_in),
                                       factor_matrix(dense.up, in, o.factor, store, g_in),
                                       factor_matrix(dense.down, hid, o.factor, store, g_hid)};
      // The biases (gpt-oss) stay as they are; the dense views give way to the factors.
      moe::ExpertWeights f = experts[e];
      f.gate = f.up = f.down = TensorView{};
      f.gate_lr = parts[0].lr;
      f.up_lr = parts[1].lr;
      f.down_lr = parts[2].lr;
      for (int p = 0; p < 3; ++p) {
        rep.rel_error[p] += parts[p].rel_error;
        rep.weighted_error[p] += parts[p].weighted_error;
      }
      ++n_matrices;
      rep.dense_expert_params += static_cast<int64_t>(dense.gate.data.size() + dense.up.data.size() + dense.down.data.size());
      for (const TensorView* b : {&f.gate_b, &f.up_b, &f.down_b}) {
        if (b->valid()) rep.dense_expert_params += b->numel();  // kept as they are, on both sides
      }
      rep.expert_params += f.n_params();
      experts[e] = f;
    }
    m.replace_layer(l, m.weights().layers[l], std::move(experts));
    // The next layer calibrates on this layer's factored output, as it will see at run time.
    if (l + 1 < c.n_layer) {
      if (o.progress) o.progress(l, c.n_layer, "forward");
      stream.run_layer(l, nullptr);
    }
  }
  for (int p = 0; p < 3; ++p) {
    rep.rel_error[p] /= std::max<int64_t>(1, n_matrices);
    rep.weighted_error[p] /= std::max<int64_t>(1, n_matrices);
  }

  if (o.progress) o.progress(c.n_layer, c.n_layer, "writing");
  model::ModelTensors t;
  t.weights = m.weights();
  t.experts = m.stored_experts();
  t.per_expert = true;
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back(kLowRankRankKey, GgufValue::u32(static_cast<uint32_t>(o.factor.rank)));
  kv.emplace_back(kLowRankSparseKey, GgufValue::u32(static_cast<uint32_t>(o.factor.sparse_rows)));
  kv.emplace_back("mcmoe.lowrank.type", GgufValue::str(std::string(dtype_name(o.factor.type))));
  kv.emplace_back("mcmoe.lowrank.svd", GgufValue::str(o.factor.whitened ? "whitened" : "plain"));
  kv.emplace_back("mcmoe.lowrank.importance", GgufValue::str("sum_j |residual_ij| * ||x_j||"));
  kv.emplace_back("mcmoe.calibration.text", GgufValue::str(text_path));
  kv.emplace_back("mcmoe.calibration.samples", GgufValue::u32(static_cast<uint32_t>(o.sampling.samples)));
  kv.emplace_back("mcmoe.calibration.seq", GgufValue::u32(static_cast<uint32_t>(o.sampling.seq)));
  // No llama_ftype describes factored experts; 1024 reads as "unknown" there.
  model::write_model_gguf(m, t, std::filesystem::path(out_path).stem().string(), 1024, kv, out_path);

  const format::GgufFile written(out_path);
  for (const auto& ti : written.tensors()) {
    int64_t n = 1;
    for (int64_t x : ti.shape) n *= x;
    rep.model_params += n;
  }
  rep.file_bytes = std::filesystem::file_size(out_path);
  rep.seconds = seconds_since(t0);
  return rep;
}

}  // namespace mcmoe::compress
