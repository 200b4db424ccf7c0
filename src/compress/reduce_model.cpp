#include "compress/reduce_model.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "compress/dense.h"
#include "compress/expert_merge.h"
#include "compress/reduce_stats.h"
#include "compress/tensor_store.h"
#include "core/clock.h"
#include "core/error.h"
#include "format/gguf.h"
#include "model/inventory.h"
#include "model/model_writer.h"

namespace mcmoe::compress {

namespace {

using format::GgufValue;

// MoE block inputs per sample kept for clustering's mean expert outputs: enough for a
// stable mean (8192 rows over 32 samples) at a bounded cost of n_expert forward passes.
constexpr int64_t kClusterInputs = 8192;

// Stored parameters of every tensor of a model, from the inventory (factored projections
// count their parts).
int64_t model_params(const model::ModelConfig& c, const model::ModelWeights& w,
                     const model::LayerExperts& experts) {
  int64_t n = 0;
  model::for_each_tensor(c, w, experts, [&](const model::TensorSlot& s) {
    if (s.low_rank && s.low_rank->valid()) {
      for (const TensorView* v :
           {&s.low_rank->left, &s.low_rank->right, &s.low_rank->sparse, &s.low_rank->index}) {
        if (v->valid()) n += v->numel();
      }
      return;
    }
    if (s.view->valid()) n += s.view->numel();
  });
  return n;
}

// Merged matrices are stored in the type their sources had when that type can be written
// from f32 here, else in F16.
DType merged_type(DType source) {
  switch (source) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0: return source;
    default: return DType::F16;
  }
}

uint32_t file_type_of(const model::Model& m) {
  if (m.gguf()) return static_cast<uint32_t>(m.gguf()->get_uint("general.file_type", 1));
  for (const auto& layer : m.stored_experts()) {
    if (layer.empty()) continue;  // a dense layer holds no experts
    switch (layer[0].gate.type) {
      case DType::F32: return 0;
      case DType::BF16: return 32;
      default: return 1;
    }
  }
  return 1;
}

// Each expert's mean output over the kept block inputs (HC-SMoE's clustering features), as
// the engine computes it (the family's activation and expert biases).
std::vector<std::vector<double>> mean_outputs(const model::ModelConfig& c,
                                              const std::vector<moe::ExpertWeights>& experts,
                                              const std::vector<float>& inputs, int64_t d,
                                              ThreadPool& pool) {
  const int64_t rows = static_cast<int64_t>(inputs.size()) / d;
  if (rows == 0) fail("reduce: no calibration rows for clustering");
  std::vector<std::vector<double>> means;
  std::vector<float> out, g, u;
  for (const moe::ExpertWeights& ew : experts) {
    const DenseExpert e = routed_expert_to_dense(c, ew);
    std::vector<double>& mean = means.emplace_back(static_cast<size_t>(d), 0.0);
    for (int64_t r0 = 0; r0 < rows; r0 += 512) {
      const int64_t n = std::min<int64_t>(512, rows - r0);
      out.resize(static_cast<size_t>(n * d));
      expert_forward(e, inputs.data() + r0 * d, n, out.data(), pool, g, u);
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < d; ++c) mean[c] += out[r * d + c];
      }
    }
    for (double& x : mean) x /= static_cast<double>(rows);
  }
  return means;
}

// An f32 vector the store owns.
TensorView stored_vector(const std::vector<float>& values, TensorStore& store) {
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::copy_n(reinterpret_cast<const uint8_t*>(values.data()), bytes.size(), bytes.data());
  return store.add(DType::F32, {static_cast<int64_t>(values.size())}, std::move(bytes));
}

// Elements `rows` of a vector with one value per router row (router bias, selection bias),
// in that order; an absent vector stays absent.
TensorView select_elements(const TensorView& v, const std::vector<int64_t>& rows,
                           TensorStore& store) {
  if (!v.valid()) return v;
  const std::vector<float> all = to_vector(v);
  std::vector<float> kept;
  for (int64_t r : rows) kept.push_back(all[r]);
  return stored_vector(kept, store);
}

// One merged expert from the group's members, in the members' storage types. Biases (gpt-oss)
// are merged with their neurons: permuted with the gate/up rows, then frequency-weighted
// like the matrices (compress/expert_merge.h).
moe::ExpertWeights merge_group(const model::ModelConfig& c,
                               const std::vector<moe::ExpertWeights>& stored,
                               const std::vector<int>& members, const std::vector<int64_t>& picks,
                               int ref, TensorStore& store, ThreadPool& pool) {
  std::vector<DenseExpert> dense;
  std::vector<double> weights;
  int ref_index = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    dense.push_back(routed_expert_to_dense(c, stored[members[i]]));
    weights.push_back(static_cast<double>(picks[members[i]]));
    if (members[i] == ref) ref_index = static_cast<int>(i);
  }
  const DenseExpert merged = merge_experts(dense, weights, ref_index, pool);
  const moe::ExpertWeights& like = stored[ref];
  moe::ExpertWeights out;
  out.gate = store.convert(merged.gate.view(), merged_type(like.gate.type));
  out.up = store.convert(merged.up.view(), merged_type(like.up.type));
  out.down = store.convert(merged.down.view(), merged_type(like.down.type));
  if (!merged.gate_b.empty()) out.gate_b = stored_vector(merged.gate_b, store);
  if (!merged.up_b.empty()) out.up_b = stored_vector(merged.up_b, store);
  if (!merged.down_b.empty()) out.down_b = stored_vector(merged.down_b, store);
  return out;
}

bool stackable(const std::vector<std::vector<moe::ExpertWeights>>& experts) {
  for (const auto& layer : experts) {
    for (const moe::ExpertWeights& e : layer) {
      if (e.gate.type != layer[0].gate.type || e.up.type != layer[0].up.type || e.down.type != layer[0].down.type) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

ReduceReport reduce_model(model::Model& m, const std::string& text, const std::string& text_path,
                          const ReduceOptions& o, const std::string& out_path) {
  const auto t0 = std::chrono::steady_clock::now();
  check_keep(o.keep);
  const model::ModelConfig& c = m.config();
  int moe_layers = 0;
  for (int l = 0; l < c.n_layer; ++l) moe_layers += c.is_moe(l) ? 1 : 0;
  if (moe_layers == 0) {
    fail(
        "{}: reduce removes or merges routed experts, and none of this model's {} layers is an MoE "
        "layer",
        m.path(), c.n_layer);
  }
  if (c.n_expert <= 1) fail("{}: reduce needs an MoE model; this one has {} expert(s)", m.path(), c.n_expert);
  if (!c.expert_map.empty()) {
    fail("{}: the model's experts are already merged (metadata {}*); reduce the original model instead", m.path(),
         model::kExpertMapKeyPrefix);
  }
  const bool merging = reduce_merges(o.method);
  if (!merging && c.router.group != model::GroupSelect::None) {
    // Group-limited routing splits the router rows into n_group equal groups; removing rows
    // would leave groups of different sizes, which the routing rule cannot express.
    fail(
        "{}: --method {}: the router picks experts within {} groups of {} (group-limited routing), "
        "and removing experts would unbalance the groups; use --method merge or cluster, which "
        "keep every router row",
        m.path(), reduce_method_name(o.method), c.router.n_group, c.n_expert / c.router.n_group);
  }
  const int64_t d = c.n_embd;

  // 1. Measure every layer on the original model.
  LayerStream stream(m, sample_windows(m, text, text_path, o.sampling), o.threads);
  ThreadPool& pool = stream.session().pool();
  const int64_t inputs_per_sample =
      o.method == ReduceMethod::kCluster ? std::max<int64_t>(1, kClusterInputs / stream.n_samples()) : 0;
  std::vector<LayerReduceStats> stats(c.n_layer);
  std::vector<std::vector<std::vector<double>>> points(c.n_layer);  // cluster: [layer][expert][n_embd]
  for (int l = 0; l < c.n_layer; ++l) {
    if (!c.is_moe(l)) {
      // A dense layer: nothing to reduce (empty statistics, no experts kept); its MLP and a
      // MoE layer's shared expert are written as they are.
      if (o.progress) o.progress(l, c.n_layer, "dense");
      stream.run_layer(l, nullptr);
      continue;
    }
    if (o.progress) o.progress(l, c.n_layer, "measuring");
    ReduceCollector col(c.experts(l), d, inputs_per_sample);
    stream.run_layer(l, &col);
    stats[l] = col.take();
    if (o.method == ReduceMethod::kCluster) {
      points[l] = mean_outputs(c, m.stored_experts()[l], stats[l].block_inputs, d, pool);
      stats[l].block_inputs = {};
    }
  }

  // 2. Decide how many experts each layer keeps and which.
  ReduceReport rep;
  for (const LayerReduceStats& s : stats) {  // a dense layer scores no expert
    rep.scores.push_back(o.method == ReduceMethod::kPrune ? s.reap_scores() : s.frequencies());
  }
  // Pruning removes router rows, so a layer keeps at least top-k experts; merging keeps the
  // router whole, so one expert per layer is enough.
  const std::vector<int> counts = kept_counts(rep.scores, o.keep, merging ? 1 : c.n_expert_used, o.adaptive);

  // 3. Build the reduced layers.
  model::ModelConfig nc = c;
  nc.layer_experts = counts;
  nc.expert_map.clear();
  model::ModelTensors t;
  t.weights = m.weights();
  t.experts.resize(c.n_layer);
  TensorStore store;
  for (int l = 0; l < c.n_layer; ++l) {
    const std::vector<moe::ExpertWeights>& stored = m.stored_experts()[l];
    const int n = c.experts(l);
    std::vector<int> group(n, -1);
    if (n == 0) {  // a dense layer
      if (merging) nc.expert_map.emplace_back();
      rep.groups.push_back(group);
      continue;
    }
    if (o.progress) o.progress(l, c.n_layer, merging ? "merging" : "pruning");
    if (!merging) {
      const std::vector<int> kept = top_experts(rep.scores[l], counts[l]);
      std::vector<int64_t> rows;
      for (int e : kept) {
        group[e] = static_cast<int>(rows.size());
        rows.push_back(e);
        t.experts[l].push_back(stored[e]);
      }
      // A pruned expert takes its router row with it, and that row's router bias and
      // selection bias; the shared expert is no routed expert and stays as it is.
      const model::LayerWeights& L = m.weights().layers[l];
      model::LayerWeights& out = t.weights.layers[l];
      out.router = store.convert(L.router, L.router.type, &rows);
      out.router_bias = select_elements(L.router_bias, rows, store);
      out.choice_bias = select_elements(L.choice_bias, rows, store);
    } else {
      std::vector<int> refs;  // per group: the member the others are aligned to
      if (o.method == ReduceMethod::kMerge) {
        const std::vector<int> dominant = top_experts(rep.scores[l], counts[l]);
        group = group_by_similarity(dominant, router_similarity(stats[l].router_gram, n), n);
        refs.assign(counts[l], -1);
        for (int dom : dominant) refs[group[dom]] = dom;
      } else {
        group = cluster_average_linkage(points[l], counts[l]);
        refs.assign(counts[l], -1);
        for (int e = 0; e < n; ++e) {  // the most frequently routed member
          int& r = refs[group[e]];
          if (r < 0 || stats[l].picks[e] > stats[l].picks[r]) r = e;
        }
      }
      for (int g = 0; g < counts[l]; ++g) {
        std::vector<int> members;
        for (int e = 0; e < n; ++e) {
          if (group[e] == g) members.push_back(e);
        }
        t.experts[l].push_back(members.size() == 1 ? stored[members[0]]
                                                   : merge_group(c, stored, members, stats[l].picks,
                                                                 refs[g], store, pool));
      }
      nc.expert_map.push_back(group);
    }
    rep.groups.push_back(group);
  }
  int widest = 0;
  for (int l = 0; l < c.n_layer; ++l) widest = std::max(widest, nc.router_rows(l));
  nc.n_expert = widest;
  // Equal counts in every MoE layer without merging need no per-layer metadata (dense
  // layers hold none anyway): llama.cpp's layout as is.
  bool equal_counts = true;
  for (int l = 0; l < c.n_layer; ++l) equal_counts &= !c.is_moe(l) || counts[l] == widest;
  if (!merging && equal_counts) nc.layer_experts.clear();
  nc.validate(out_path);
  rep.layer_experts = counts;

  // 4. Write.
  if (o.progress) o.progress(c.n_layer, c.n_layer, "writing");
  t.config = &nc;
  t.per_expert = !stackable(t.experts);
  std::vector<std::pair<std::string, GgufValue>> kv;
  kv.emplace_back("mcmoe.reduce.method", GgufValue::str(reduce_method_name(o.method)));
  kv.emplace_back("mcmoe.reduce.keep", GgufValue::f32(static_cast<float>(o.keep)));
  kv.emplace_back("mcmoe.reduce.per_layer", GgufValue::str(o.adaptive ? "adaptive" : "uniform"));
  kv.emplace_back("mcmoe.calibration.text", GgufValue::str(text_path));
  kv.emplace_back("mcmoe.calibration.samples", GgufValue::u32(static_cast<uint32_t>(o.sampling.samples)));
  kv.emplace_back("mcmoe.calibration.seq", GgufValue::u32(static_cast<uint32_t>(o.sampling.seq)));
  model::write_model_gguf(m, t, std::filesystem::path(out_path).stem().string(), file_type_of(m), kv, out_path);

  rep.params_before = model_params(c, m.weights(), m.stored_experts());
  rep.params_after = model_params(nc, t.weights, t.experts);
  rep.file_bytes = std::filesystem::file_size(out_path);
  rep.seconds = seconds_since(t0);
  return rep;
}

}  // namespace mcmoe::compress
