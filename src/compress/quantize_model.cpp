#include "compress/quantize_model.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <span>

#include "compress/dense.h"
#include "compress/hessian.h"
#include "compress/layer_inputs.h"
#include "compress/quantizers.h"
#include "compress/tensor_store.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/model_writer.h"
#include "quant/lowbit.h"

namespace mcmoe::compress {

namespace {

using format::GgufType;
using format::GgufValue;
using model::TensorRole;
using model::TensorSlot;

bool is_q8_layer(const QuantizeModelOptions& o, int layer) {
  return std::find(o.q8_layers.begin(), o.q8_layers.end(), layer) != o.q8_layers.end();
}

// The width a matrix of decoder layer `layer` is quantized to, by its role (routed experts:
// the plan); 0: kept as stored.
int role_bits(const QuantizeModelOptions& o, int layer, TensorRole role) {
  if (is_q8_layer(o, layer)) {
    // A router kept as stored stays so: the ablation only ever widens.
    return role == TensorRole::Router && o.router_bits == 0 ? 0 : 8;
  }
  switch (role) {
    case TensorRole::Attention:
      return o.attn_bits;
    case TensorRole::Router:
      return o.router_bits;
    case TensorRole::SharedExpert:
    case TensorRole::DenseMlp:
      return o.shared_bits;
    default:
      return 0;
  }
}

const char* role_flag(const QuantizeModelOptions& o, int layer, TensorRole role) {
  if (is_q8_layer(o, layer)) return "--q8-layers";
  switch (role) {
    case TensorRole::Attention:
      return "--attn-bits";
    case TensorRole::Router:
      return "--router-bits";
    case TensorRole::SharedExpert:
    case TensorRole::DenseMlp:
      return "--shared-bits";
    default:
      return "--bits";
  }
}

// 8 bits is ggml's Q8_0 (symmetric, groups of 32): a fast format both engines read.
QuantSpec spec_for(int bits, const QuantizeModelOptions& o) {
  return bits == 8 ? QuantSpec{.bits = 8, .group = 32, .symmetric = true}
                   : QuantSpec{.bits = bits, .group = o.group, .search = o.grid_search};
}

class LayerQuantizer {
 public:
  LayerQuantizer(const QuantizeModelOptions& o, TensorStore& store, ThreadPool& pool)
      : o_(o), store_(store), pool_(pool) {}

  // Quantizes w (f32 [rows, cols]) to `bits` with the given input Gram matrix (null or an
  // empty accumulator: round-to-nearest) and returns the packed tensor. The O(cols³) factor
  // of H is computed once per accumulator and shared by the matrices that read it (q/k/v,
  // an expert's gate and up), which must therefore come one after another.
  TensorView quantize(const DenseMatrix& w, int bits, const HessianAccumulator* h, GroupedQuant* out = nullptr) {
    const QuantSpec spec = spec_for(bits, o_);
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
  if (o.group != 32 && o.group != 64 && o.group != 128) fail("--group {}: expected 32, 64 or 128", o.group);
  for (const auto& layer : m.stored_experts()) {
    for (const auto& e : layer) {
      if (e.factored()) {
        fail("{}: experts are stored low-rank plus sparse (mcmoe lowrank); quantize the model before factoring it "
             "(lowrank --type q8_0 stores the factors at 8 bits)", m.path());
      }
    }
  }
  for (int l : o.q8_layers) {
    if (l < 0 || l >= m.config().n_layer) {
      fail("--q8-layers {}: expected a layer in 0..{} ({} has {} layers)", l,
           m.config().n_layer - 1, m.path(), m.config().n_layer);
    }
  }
  auto width_ok = [](int b) { return (b >= 1 && b <= 4) || b == 8; };
  if (!width_ok(o.attn_bits)) fail("--attn-bits {}: expected 1, 2, 3, 4 or 8", o.attn_bits);
  if (!width_ok(o.shared_bits)) fail("--shared-bits {}: expected 1, 2, 3, 4 or 8", o.shared_bits);
  if (o.router_bits != 0 && !width_ok(o.router_bits)) {
    fail("--router-bits {}: expected 1, 2, 3, 4 or 8, or 0 to keep the router as stored", o.router_bits);
  }
  if (o.embd_type != DType::F16 && o.embd_type != DType::Q8_0 && o.embd_type != DType::F32) {
    fail("--embd-type {}: expected f16, q8_0 or f32", dtype_name(o.embd_type));
  }
}

// Every matrix the run will quantize must fill whole blocks of its format along its rows
// (the group size, 32 to 128, divides the block); checked for the whole model before any
// work, naming the first tensor that does not.
void check_group_widths(const model::Model& m, const QuantizeModelOptions& o, const BitPlan& plan) {
  const model::ModelConfig& c = m.config();
  for (int l = 0; l < c.n_layer; ++l) {
    model::for_each_layer_tensor(
        c, l, m.weights().layers[l], m.stored_experts()[l], [&](const TensorSlot& s) {
          if (!s.matrix || !s.view->valid()) return;
          const int bits =
              s.role == TensorRole::RoutedExpert ? plan.bits[l][s.expert] : role_bits(o, l, s.role);
          if (bits == 0) return;
          // Q8_0 stores blocks of 32 weights; the MQ formats blocks of 128 (whatever the group).
          const int64_t block = bits == 8 ? 32 : 128, cols = s.shape.back();
          if (cols % block != 0) {
            const std::string why =
                s.role == TensorRole::RoutedExpert
                    ? fmt::format("the bit plan gives expert {} {} bits", s.expert, bits)
                    : fmt::format("{} {}", role_flag(o, l, s.role), bits);
            fail(
                "{}: tensor '{}' {}: its rows of {} weights do not fill the blocks of {} that "
                "{}-bit weights are stored "
                "in ({}; 8 bits stores blocks of 32)",
                m.path(), s.name, shape_string(s.shape), cols, block, bits, why);
          }
        });
  }
}

// Parameters of each routed expert, [layer][expert], from the inventory (the global budget
// weighs experts by them).
std::vector<std::vector<int64_t>> expert_params(const model::Model& m) {
  const model::ModelConfig& c = m.config();
  std::vector<std::vector<int64_t>> params(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    params[l].assign(c.experts(l), 0);
    model::for_each_layer_tensor(c, l, m.weights().layers[l], m.stored_experts()[l],
                                 [&](const TensorSlot& s) {
                                   if (s.role != TensorRole::RoutedExpert || !s.matrix) return;
                                   int64_t n = 1;
                                   for (int64_t x : s.shape) n *= x;
                                   params[l][s.expert] += n;
                                 });
  }
  return params;
}

// Rows of --expert-prior's pooled sample per layer: enough for a d-wide Gram matrix of full
// rank at the sizes we run, small enough that pushing it through every expert for down's
// Hessian costs less than the experts' own rows.
constexpr int64_t kPriorRows = 4096;

// A strided sample of at most max_rows of all the layer's routed rows (each expert's in
// turn), and the mean gate value over all of them.
std::vector<float> pooled_expert_rows(const LayerInputs& in, int64_t d, int64_t max_rows,
                                      double* mean_gate) {
  int64_t total = 0;
  double gate_sum = 0;
  for (size_t e = 0; e < in.expert_rows.size(); ++e) {
    total += static_cast<int64_t>(in.expert_rows[e].size()) / d;
    for (float g : in.expert_gates[e]) gate_sum += g;
  }
  *mean_gate = total > 0 ? gate_sum / static_cast<double>(total) : 1.0;
  std::vector<float> out;
  if (total == 0) return out;
  const int64_t stride = (total + max_rows - 1) / max_rows;
  int64_t i = 0;
  for (const std::vector<float>& rows : in.expert_rows) {
    const int64_t n = static_cast<int64_t>(rows.size()) / d;
    for (int64_t r = 0; r < n; ++r, ++i) {
      if (i % stride == 0) out.insert(out.end(), rows.begin() + r * d, rows.begin() + (r + 1) * d);
    }
  }
  return out;
}

// A matrix of a decoder layer other than the routed experts, and what to do with it.
struct LayerMatrix {
  TensorSlot slot;  // view points into the caller's copy of the layer's weights
  int bits = 0;     // 0: kept as stored
  const HessianAccumulator* gram = nullptr;  // null: round-to-nearest
};

}  // namespace

QuantizeReport quantize_model(model::Model& m, const CalibrationStats& stats, const std::string& text,
                              const std::string& text_path, const QuantizeModelOptions& o,
                              const std::string& out_path) {
  const auto t0 = std::chrono::steady_clock::now();
  const model::ModelConfig& c = m.config();
  check_options(m, o);
  check_stats_match(stats, m, "--stats");
  QuantizeReport rep;
  if (o.other_domains.empty()) {
    rep.plan = allocate(stats, o.alloc, expert_params(m));
  } else {
    std::vector<const CalibrationStats*> domains{&stats};
    for (size_t d = 0; d < o.other_domains.size(); ++d) {
      check_stats_match(o.other_domains[d], m, fmt::format("--worst-case statistics {}", d + 1));
      domains.push_back(&o.other_domains[d]);
    }
    WorstCasePlan w = allocate_worst_case(domains, o.alloc, expert_params(m));
    rep.plan = std::move(w.plan);
    rep.plan.notes.push_back(
        fmt::format("worst case over {} calibration domains: cost / each domain's own optimum "
                    "{:.4f} (the first is --stats)",
                    domains.size(), fmt::join(w.regret, ", ")));
  }
  for (int l : o.q8_layers) {
    std::fill(rep.plan.bits[l].begin(), rep.plan.bits[l].end(), 8);
    rep.plan.notes.push_back(fmt::format("layer {} at 8 bits throughout (--q8-layers)", l));
  }
  check_group_widths(m, o, rep.plan);

  TensorStore store;
  std::unique_ptr<LayerStream> stream;
  if (o.gptq) stream = std::make_unique<LayerStream>(m, sample_windows(m, text, text_path, o.sampling), o.threads);
  ThreadPool own_pool(o.threads);
  ThreadPool& pool = stream ? stream->session().pool() : own_pool;
  LayerQuantizer lq(o, store, pool);
  uint64_t expert_bytes = 0, linear_bytes = 0;
  // bits: the width the flags ask for the role (-1: a --q8-layers layer, which does not
  // change what the report says was asked).
  auto count = [&](const TensorView& v, TensorRole role, int bits) {
    const int64_t n = v.numel();
    linear_bytes += v.nbytes;
    rep.linear_params += n;
    RoleReport& r = rep.roles[role];
    if (bits >= 0) r.bits = bits;
    r.params += n;
    r.bytes += v.nbytes;
    if (role == TensorRole::RoutedExpert) {
      expert_bytes += v.nbytes;
      rep.expert_params += n;
    }
  };

  for (int l = 0; l < c.n_layer; ++l) {
    if (o.progress) o.progress(l, c.n_layer, "inputs");
    model::LayerWeights L = m.weights().layers[l];
    std::vector<moe::ExpertWeights> experts = m.stored_experts()[l];
    LayerInputs in(c.experts(l));
    // The layer's other matrices, from the inventory; each asks for the Gram matrix of the
    // intermediate it reads.
    std::vector<LayerMatrix> matrices;
    model::for_each_layer_tensor(c, l, L, experts, [&](const TensorSlot& s) {
      if (s.role == TensorRole::RoutedExpert || !s.matrix || !s.view->valid()) return;
      LayerMatrix& x =
          matrices.emplace_back(LayerMatrix{.slot = s, .bits = role_bits(o, l, s.role)});
      if (stream && x.bits > 0 && *s.input != '\0') x.gram = &in.want(s.input, s.shape.back());
    });
    if (stream) stream->observe_layer(l, &in);
    // Matrices that read one intermediate next to each other, so they share its factor.
    std::stable_sort(matrices.begin(), matrices.end(),
                     [](const LayerMatrix& a, const LayerMatrix& b) {
                       return std::string_view(a.slot.input) < std::string_view(b.slot.input);
                     });
    if (o.progress) o.progress(l, c.n_layer, "non-expert matrices");
    for (LayerMatrix& x : matrices) {
      TensorView& v = *x.slot.view;
      if (x.bits > 0) {
        const std::vector<int64_t> shape = v.shape;  // a 3-D tensor is quantized as its rows
        v = lq.quantize(to_dense(v), x.bits, x.gram);
        v.shape = shape;
      }
      count(v, x.slot.role, is_q8_layer(o, l) ? -1 : x.bits);
    }
    lq.forget_factor();  // the layer's accumulators die with `in`

    if (o.progress && c.is_moe(l)) o.progress(l, c.n_layer, "experts");
    const HessianAccumulator* none = nullptr;
    auto H = [&](const HessianAccumulator& h) { return stream && h.count() > 0 ? &h : none; };
    // --expert-prior: every expert's Hessians also get the layer's pooled routed rows, worth
    // expert_prior tokens in all, so that an expert calibration rarely reached is not fitted
    // to its few tokens alone (and one it never reached gets GPTQ, not round-to-nearest).
    std::vector<float> prior_rows, prior_w;
    if (stream && o.expert_prior > 0 && c.is_moe(l)) {
      double mean_gate = 1;
      prior_rows = pooled_expert_rows(in, c.n_embd, kPriorRows, &mean_gate);
      const int64_t n_prior = static_cast<int64_t>(prior_rows.size()) / c.n_embd;
      if (n_prior > 0) {
        const double w =
            o.expert_prior * (o.affinity_hessian ? mean_gate : 1.0) / static_cast<double>(n_prior);
        prior_w.assign(static_cast<size_t>(n_prior), static_cast<float>(w));
      }
    }
    const int64_t n_prior = static_cast<int64_t>(prior_w.size());
    for (int e = 0; e < c.experts(l); ++e) {
      const int bits = rep.plan.bits[l][e];
      const DenseExpert dense = routed_expert_to_dense(c, experts[e]);
      const std::vector<float>& rows = in.expert_rows[e];
      const int64_t n_rows = static_cast<int64_t>(rows.size()) / c.n_embd;
      // --affinity-hessian: each routed row weighted by the gate value it got (MoEQuant's AGQ).
      const std::span<const float> gates = o.affinity_hessian
                                               ? std::span<const float>(in.expert_gates[e])
                                               : std::span<const float>();
      // An expert no calibration token reached, and no prior, has no Hessian:
      // round-to-nearest (GPTQ would treat every input as dead and zero the weights).
      HessianAccumulator h_in(c.n_embd);
      if (stream) {
        h_in.add(rows.data(), n_rows, gates);
        h_in.add(prior_rows.data(), n_prior, prior_w);
      }
      GroupedQuant qg, qu;
      experts[e].gate = lq.quantize(dense.gate, bits, H(h_in), &qg);
      experts[e].up = lq.quantize(dense.up, bits, H(h_in), &qu);
      // down sees the hidden state computed with the quantized gate and up, as it will at
      // run time (sequential within the expert), through the expert's own activation and
      // biases.
      HessianAccumulator h_ff(c.n_ff);
      if (stream && h_in.count() > 0) {
        const DenseExpert q_in{.gate = dequantized(qg),
                               .up = dequantized(qu),
                               .down = {},
                               .gate_b = dense.gate_b,
                               .up_b = dense.up_b,
                               .down_b = {},
                               .act = dense.act};
        std::vector<float> g, u;
        auto add_hidden = [&](const std::vector<float>& x, int64_t n, std::span<const float> w) {
          for (int64_t r0 = 0; r0 < n; r0 += 512) {
            const int64_t nr = std::min<int64_t>(512, n - r0);
            expert_hidden(q_in, x.data() + r0 * c.n_embd, nr, pool, g, u);
            h_ff.add(g.data(), nr,
                     w.empty() ? w : w.subspan(static_cast<size_t>(r0), static_cast<size_t>(nr)));
          }
        };
        add_hidden(rows, n_rows, gates);
        add_hidden(prior_rows, n_prior, prior_w);
      }
      experts[e].down = lq.quantize(dense.down, bits, H(h_ff));
      for (const TensorView* v : {&experts[e].gate, &experts[e].up, &experts[e].down})
        count(*v, TensorRole::RoutedExpert, 0);
      in.expert_rows[e] = {};
      in.expert_gates[e] = {};
      lq.forget_factor();  // h_in and h_ff die here
    }
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
  // ODP reads one threshold per layer and top-k slot after the first; a dense layer routes
  // nothing and gets 0 (never prune).
  for (const LayerStats& L : stats.layers) {
    for (int j = 0; j + 1 < c.n_expert_used; ++j) {
      const bool measured =
          j < static_cast<int>(L.ratio_quantiles.size()) && L.ratio_quantiles[j].size() > 50;
      mu_items.push_back(GgufValue::f32(measured ? L.ratio_quantiles[j][50] : 0.f));
    }
  }
  kv.emplace_back(kPlanKey, GgufValue::array(GgufType::U8, plan_items));
  if (!mu_items.empty()) kv.emplace_back(kOdpMuKey, GgufValue::array(GgufType::F32, mu_items));
  kv.emplace_back("mcmoe.quant.method", GgufValue::str(o.gptq ? "gptq" : "rtn"));
  kv.emplace_back("mcmoe.quant.alloc", GgufValue::str(alloc_method_name(o.alloc.method)));
  kv.emplace_back("mcmoe.quant.target_bits", GgufValue::f32(static_cast<float>(o.alloc.avg_bits)));
  kv.emplace_back("mcmoe.quant.group", GgufValue::u32(static_cast<uint32_t>(o.group)));
  kv.emplace_back("mcmoe.quant.attn_bits", GgufValue::u32(static_cast<uint32_t>(o.attn_bits)));
  kv.emplace_back("mcmoe.quant.router_bits", GgufValue::u32(static_cast<uint32_t>(o.router_bits)));
  kv.emplace_back("mcmoe.quant.shared_bits", GgufValue::u32(static_cast<uint32_t>(o.shared_bits)));
  kv.emplace_back("mcmoe.quant.alpha", GgufValue::f32(static_cast<float>(o.alloc.alpha)));
  kv.emplace_back("mcmoe.quant.beta", GgufValue::f32(static_cast<float>(o.alloc.beta)));
  kv.emplace_back("mcmoe.quant.gamma", GgufValue::f32(static_cast<float>(o.alloc.gamma)));
  kv.emplace_back("mcmoe.quant.freq_floor", GgufValue::f32(static_cast<float>(o.alloc.freq_floor)));
  kv.emplace_back("mcmoe.quant.damp", GgufValue::f32(static_cast<float>(o.damp)));
  if (!o.q8_layers.empty()) {
    std::vector<GgufValue> q8;
    for (int l : o.q8_layers) q8.push_back(GgufValue::u32(static_cast<uint32_t>(l)));
    kv.emplace_back("mcmoe.quant.q8_layers", GgufValue::array(GgufType::U32, q8));
  }
  kv.emplace_back("mcmoe.calibration.text", GgufValue::str(stats.text));
  kv.emplace_back("mcmoe.calibration.samples", GgufValue::u32(static_cast<uint32_t>(o.sampling.samples)));
  kv.emplace_back("mcmoe.calibration.seq", GgufValue::u32(static_cast<uint32_t>(o.sampling.seq)));
  // No llama_ftype describes per-expert mixed precision; 1024 reads as "unknown" there.
  model::write_model_gguf(m, t, std::filesystem::path(out_path).stem().string(), 1024, kv, out_path);

  rep.expert_bits = rep.expert_params ? 8.0 * expert_bytes / rep.expert_params : 0;
  rep.linear_bits = rep.linear_params ? 8.0 * linear_bytes / rep.linear_params : 0;
  rep.file_bytes = std::filesystem::file_size(out_path);
  rep.seconds = seconds_since(t0);
  return rep;
}

}  // namespace mcmoe::compress
