#include "compress/quantize_model.h"

#include <chrono>
#include <filesystem>

#include "model/model_writer.h"
#include "compress/dense.h"
#include "compress/hessian.h"
#include "compress/quantizers.h"
#include "compress/tensor_store.h"
#include "core/error.h"
#include "quant/lowbit.h"

namespace mcmoe::compress {

namespace {

using format::GgufType;
using format::GgufValue;

// Gram matrices of one layer's non-expert linear inputs, and every routed row per expert.
class LayerInputs final : public model::ForwardObserver {
 public:
  LayerInputs(const model::ModelConfig& c)
      : attn(c.n_embd), ctx(int64_t{c.n_head} * c.head_dim), ffn(c.n_embd), shared(std::max(1, c.n_ff_shared)),
        expert_rows(c.n_expert) {}
  HessianAccumulator attn, ctx, ffn, shared;
  std::vector<std::vector<float>> expert_rows;  // [n_expert][rows * n_embd]

  void on_tensor(std::string_view name, int, const float* data, int64_t rows, int64_t) override {
    if (name == "attn_norm") attn.add(data, rows);
    else if (name == "attn_ctx") ctx.add(data, rows);
    else if (name == "ffn_norm") ffn.add(data, rows);
    else if (name == "shared_hidden") shared.add(data, rows);
  }
  void on_expert(const model::ExpertEvent& e) override {
    auto& r = expert_rows[e.expert];
    r.insert(r.end(), e.input, e.input + static_cast<int64_t>(e.token_rows.size()) * e.n_embd);
  }
};

class LayerQuantizer {
 public:
  LayerQuantizer(const QuantizeModelOptions& o, TensorStore& store, ThreadPool& pool)
      : o_(o), store_(store), pool_(pool) {}

  // Quantizes w (f32 [rows, cols]) to `bits` with the given input Gram matrix (null or an
  // empty accumulator: round-to-nearest) and returns the packed tensor. The O(cols³) factor
  // of H is computed once per accumulator and shared by the matrices that read it (q/k/v,
  // an expert's gate and up).
  TensorView quantize(const DenseMatrix& w, int bits, const HessianAccumulator* h, GroupedQuant* out = nullptr) {
    // 8 bits is ggml's Q8_0 (symmetric, groups of 32): a fast format both engines read.
    const QuantSpec spec = bits == 8 ? QuantSpec{.bits = 8, .group = 32, .symmetric = true}
                                     : QuantSpec{.bits = bits, .group = o_.group, .search = o_.grid_search};
    GroupedQuant q;
    if (o_.gptq && h && h->count() > 0) {
      if (factor_of_ != h) {
        factor_ = gptq_factor(h->h(), h->cols(), o_.damp, o_.act_order);
        factor_of_ = h;
      }
      q = quantize_gptq(w.data.data(), w.rows, w.cols, factor_,
                        GptqOptions{.spec = spec, .damp = o_.damp, .act_order = o_.act_order, .pool = &pool_});
    } else {
      q = quantize_rtn(w.data.data(), w.rows, w.cols, spec);
    }
    const DType type = quant::grouped_dtype(q);
    TensorView v = store_.add(type, {w.rows, w.cols}, quant::pack_grouped(q, type));
    if (out) *out = std::move(q);
    return v;
  }
  // Call when an accumulator the cache may point at is about to die.
  void forget_factor() { factor_of_ = nullptr; }

 private:
  const HessianAccumulator* factor_of_ = nullptr;
  GptqFactor factor_;
  const QuantizeModelOptions& o_;
  TensorStore& store_;
  ThreadPool& pool_;
};

DenseMatrix dequantized(const GroupedQuant& q) {
  DenseMatrix d{q.rows, q.cols, std::vector<float>(static_cast<size_t>(q.rows * q.cols))};
  dequantize(q, d.data.data());
  return d;
}

void check_options(const model::Model& m, const QuantizeModelOptions& o) {
  const model::ModelConfig& c = m.config();
  if (o.group != 32 && o.group != 64 && o.group != 128) fail("--group {}: expected 32, 64 or 128", o.group);
  for (const auto& layer : m.stored_experts()) {
    for (const auto& e : layer) {
      if (e.factored()) {
        fail("{}: experts are stored low-rank plus sparse (mcmoe lowrank); quantize the model before factoring it "
             "(lowrank --type q8_0 stores the factors at 8 bits)", m.path());
      }
    }
  }
  for (int64_t cols : {int64_t{c.n_embd}, int64_t{c.n_ff}, int64_t{c.n_head} * c.head_dim}) {
    if (cols % 128 != 0) fail("{}: a linear input width {} is not a multiple of 128, which the low-bit formats need", m.path(), cols);
  }
  if (c.n_ff_shared > 0 && c.n_ff_shared % 128 != 0) fail("{}: shared expert width {} is not a multiple of 128", m.path(), c.n_ff_shared);
  auto width_ok = [](int b) { return (b >= 1 && b <= 4) || b == 8; };
  if (!width_ok(o.attn_bits)) fail("--attn-bits {}: expected 1, 2, 3, 4 or 8", o.attn_bits);
  if (o.router_bits != 0 && !width_ok(o.router_bits)) {
    fail("--router-bits {}: expected 1, 2, 3, 4 or 8, or 0 to keep the router as stored", o.router_bits);
  }
  if (o.embd_type != DType::F16 && o.embd_type != DType::Q8_0 && o.embd_type != DType::F32) {
    fail("--embd-type {}: expected f16, q8_0 or f32", dtype_name(o.embd_type));
  }
}

}  // namespace

QuantizeReport quantize_model(model::Model& m, const CalibrationStats& stats, const std::string& text,
                              const std::string& text_path, const QuantizeModelOptions& o,
                              const std::string& out_path) {
  const auto t0 = std::chrono::steady_clock::now();
  const model::ModelConfig& c = m.config();
  check_options(m, o);
  check_stats_match(stats, m, "--stats");
  QuantizeReport rep;
  std::vector<std::vector<int64_t>> params(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) params[l].assign(c.experts(l), 3 * c.n_ff * int64_t{c.n_embd});
  rep.plan = allocate(stats, o.alloc, params);

  TensorStore store;
  std::unique_ptr<LayerStream> stream;
  if (o.gptq) stream = std::make_unique<LayerStream>(m, sample_windows(m, text, text_path, o.sampling), o.threads);
  ThreadPool own_pool(o.threads);
  ThreadPool& pool = stream ? stream->session().pool() : own_pool;
  LayerQuantizer lq(o, store, pool);
  uint64_t expert_bytes = 0, linear_bytes = 0;
  auto count = [&](const TensorView& v, bool expert) {
    const int64_t n = v.numel();
    linear_bytes += v.nbytes;
    rep.linear_params += n;
    if (expert) {
      expert_bytes += v.nbytes;
      rep.expert_params += n;
    }
  };

  for (int l = 0; l < c.n_layer; ++l) {
    if (o.progress) o.progress(l, c.n_layer, "inputs");
    LayerInputs in(c);
    if (stream) stream->observe_layer(l, &in);
    const HessianAccumulator* none = nullptr;
    auto H = [&](const HessianAccumulator& h) { return stream ? &h : none; };
    model::LayerWeights L = m.weights().layers[l];
    if (o.progress) o.progress(l, c.n_layer, "attention");
    L.wq = lq.quantize(to_dense(L.wq), o.attn_bits, H(in.attn));
    L.wk = lq.quantize(to_dense(L.wk), o.attn_bits, H(in.attn));
    L.wv = lq.quantize(to_dense(L.wv), o.attn_bits, H(in.attn));
    L.wo = lq.quantize(to_dense(L.wo), o.attn_bits, H(in.ctx));
    for (const TensorView* v : {&L.wq, &L.wk, &L.wv, &L.wo}) count(*v, false);
    if (L.router.valid() && o.router_bits > 0) {
      L.router = lq.quantize(to_dense(L.router), o.router_bits, H(in.ffn));
    }
    if (L.router.valid()) count(L.router, false);
    if (c.n_ff_shared > 0) {
      L.shared.gate = lq.quantize(to_dense(L.shared.gate), o.attn_bits, H(in.ffn));
      L.shared.up = lq.quantize(to_dense(L.shared.up), o.attn_bits, H(in.ffn));
      L.shared.down = lq.quantize(to_dense(L.shared.down), o.attn_bits, H(in.shared));
      for (const TensorView* v : {&L.shared.gate, &L.shared.up, &L.shared.down}) count(*v, false);
    }
    if (o.progress) o.progress(l, c.n_layer, "experts");
    std::vector<moe::ExpertWeights> experts = m.stored_experts()[l];
    for (int e = 0; e < c.experts(l); ++e) {
      const int bits = rep.plan.bits[l][e];
      const DenseExpert dense = to_dense(experts[e]);
      const std::vector<float>& rows = in.expert_rows[e];
      const int64_t n_rows = static_cast<int64_t>(rows.size()) / c.n_embd;
      // An expert no calibration token reached has no Hessian: round-to-nearest (GPTQ would
      // treat every input as dead and zero the weights).
      HessianAccumulator h_in(c.n_embd);
      if (n_rows > 0) h_in.add(rows.data(), n_rows);
      GroupedQuant qg, qu;
      experts[e].gate = lq.quantize(dense.gate, bits, n_rows > 0 ? H(h_in) : nullptr, &qg);
      experts[e].up = lq.quantize(dense.up, bits, n_rows > 0 ? H(h_in) : nullptr, &qu);
      // down sees the hidden state computed with the quantized gate and up, as it will at
      // run time (sequential within the expert).
      HessianAccumulator h_ff(c.n_ff);
      if (stream && n_rows > 0) {
        const DenseExpert q_in{dequantized(qg), dequantized(qu), DenseMatrix{}};
        std::vector<float> g, u;
        for (int64_t r0 = 0; r0 < n_rows; r0 += 512) {
          const int64_t nr = std::min<int64_t>(512, n_rows - r0);
          expert_hidden(q_in, rows.data() + r0 * c.n_embd, nr, pool, g, u);
          h_ff.add(g.data(), nr);
        }
      }
      experts[e].down = lq.quantize(dense.down, bits, n_rows > 0 ? H(h_ff) : nullptr);
      for (const TensorView* v : {&experts[e].gate, &experts[e].up, &experts[e].down}) count(*v, true);
      in.expert_rows[e] = {};
      lq.forget_factor();  // h_in and h_ff die here
    }
    lq.forget_factor();  // the layer's accumulators die here
    m.replace_layer(l, L, std::move(experts));
    // The next layer calibrates on this layer's quantized output.
    if (stream && l + 1 < c.n_layer) {
      if (o.progress) o.progress(l, c.n_layer, "forward");
      stream->run_layer(l, nullptr);
    }
  }

  if (o.progress) o.progress(c.n_layer, c.n_layer, "writing");
  model::ModelTensors t;
  t.weights = m.weights();
  t.experts = m.stored_experts();
  t.per_expert = true;
  t.weights.tok_embd = store.convert(t.weights.tok_embd, o.embd_type);
  if (!c.tie_embeddings) t.weights.output = store.convert(t.weights.output, o.embd_type);

  std::vector<std::pair<std::string, GgufValue>> kv;
  std::vector<GgufValue> plan_items, mu_items;
  for (const auto& layer : rep.plan.bits) {
    for (int b : layer) plan_items.push_back({GgufType::U8, uint64_t(b)});
  }
  for (const LayerStats& L : stats.layers) {
    for (const auto& q : L.ratio_quantiles) mu_items.push_back(GgufValue::f32(q.size() > 50 ? q[50] : 0.f));
  }
  kv.emplace_back(kPlanKey, GgufValue::array(GgufType::U8, plan_items));
  if (!mu_items.empty()) kv.emplace_back(kOdpMuKey, GgufValue::array(GgufType::F32, mu_items));
  kv.emplace_back("mcmoe.quant.method", GgufValue::str(o.gptq ? "gptq" : "rtn"));
  kv.emplace_back("mcmoe.quant.alloc", GgufValue::str(alloc_method_name(o.alloc.method)));
  kv.emplace_back("mcmoe.quant.target_bits", GgufValue::f32(static_cast<float>(o.alloc.avg_bits)));
  kv.emplace_back("mcmoe.quant.group", GgufValue::u32(static_cast<uint32_t>(o.group)));
  kv.emplace_back("mcmoe.quant.attn_bits", GgufValue::u32(static_cast<uint32_t>(o.attn_bits)));
  kv.emplace_back("mcmoe.quant.router_bits", GgufValue::u32(static_cast<uint32_t>(o.router_bits)));
  kv.emplace_back("mcmoe.quant.alpha", GgufValue::f32(static_cast<float>(o.alloc.alpha)));
  kv.emplace_back("mcmoe.quant.beta", GgufValue::f32(static_cast<float>(o.alloc.beta)));
  kv.emplace_back("mcmoe.quant.gamma", GgufValue::f32(static_cast<float>(o.alloc.gamma)));
  kv.emplace_back("mcmoe.calibration.text", GgufValue::str(stats.text));
  kv.emplace_back("mcmoe.calibration.samples", GgufValue::u32(static_cast<uint32_t>(o.sampling.samples)));
  kv.emplace_back("mcmoe.calibration.seq", GgufValue::u32(static_cast<uint32_t>(o.sampling.seq)));
  // No llama_ftype describes per-expert mixed precision; 1024 reads as "unknown" there.
  model::write_model_gguf(m, t, std::filesystem::path(out_path).stem().string(), 1024, kv, out_path);

  rep.expert_bits = rep.expert_params ? 8.0 * expert_bytes / rep.expert_params : 0;
  rep.linear_bits = rep.linear_params ? 8.0 * linear_bytes / rep.linear_params : 0;
  rep.file_bytes = std::filesystem::file_size(out_path);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace mcmoe::compress
