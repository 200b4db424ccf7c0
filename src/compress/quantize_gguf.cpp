#include "compress/quantize_gguf.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <regex>

#include "compress/dense.h"
#include "compress/gguf_candidates.h"
#include "compress/gguf_kl_cost.h"
#include "compress/hessian.h"
#include "compress/imatrix.h"
#include "compress/layer_inputs.h"
#include "compress/quantizers.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "format/gguf.h"
#include "model/inventory.h"
#include "model/model_writer.h"
#include "ops/elementwise.h"
#include "quant/ggml_encode.h"
#include "quant/quantize.h"

namespace mcmoe::compress {

namespace {

using gguf::Candidate;
using gguf::importance_of;
using gguf::is_float_type;
using gguf::Item;
using gguf::make_item;
using gguf::measure_embeddings;
using gguf::Measurer;
using gguf::Spill;
using model::TensorKind;
using model::TensorRole;
using model::TensorSlot;

uint64_t aligned(uint64_t n) {
  constexpr uint64_t a = format::GgufWriter::kAlignment;
  return (n + a - 1) / a * a;
}

// The type each tensor has in `path` (--types-from).
std::map<std::string, DType> types_in(const std::string& path) {
  const format::GgufFile f(path);
  std::map<std::string, DType> out;
  for (const auto& t : f.tensors()) out[t.name] = t.type;
  return out;
}

void check_types(const std::vector<DType>& types) {
  if (types.empty()) fail("--types: no candidate type");
  for (DType t : types) {
    if (!quant::can_encode(t) && !is_float_type(t)) {
      fail(
          "--types: mcmoe does not write {} blocks (it writes q4_0, q5_0, q8_0, q2_K .. q6_K, "
          "iq2_xxs, iq3_xxs, iq4_nl, iq4_xs, f16, bf16, f32)",
          dtype_name(t));
    }
  }
}

}  // namespace

std::vector<int> solve_byte_budget(const std::vector<std::vector<double>>& cost,
                                   const std::vector<std::vector<uint64_t>>& bytes,
                                   uint64_t budget) {
  const size_t n = cost.size();
  if (bytes.size() != n)
    fail("internal: solve_byte_budget: {} cost rows, {} size rows", n, bytes.size());
  const uint64_t unit = std::max<uint64_t>(1, (budget + 65535) / 65536);
  const int64_t cap = static_cast<int64_t>(budget / unit);
  uint64_t smallest = 0;
  for (size_t i = 0; i < n; ++i) {
    if (cost[i].empty() || cost[i].size() != bytes[i].size() || cost[i].size() > 255)
      fail("internal: solve_byte_budget: item {} has {} costs and {} sizes", i, cost[i].size(),
           bytes[i].size());
    smallest += *std::min_element(bytes[i].begin(), bytes[i].end());
  }
  if (smallest > budget) {
    fail(
        "the budget of {} bytes is below the smallest file the candidate types allow ({} bytes for "
        "these tensors)",
        budget, smallest);
  }
  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[c]: the least cost of the items so far within c units; choice[i][c]: item i's option.
  std::vector<double> best(static_cast<size_t>(cap + 1), 0.0), next(best.size());
  std::vector<std::vector<uint8_t>> choice(n, std::vector<uint8_t>(best.size(), 0));
  for (size_t i = 0; i < n; ++i) {
    std::fill(next.begin(), next.end(), kInf);
    for (size_t j = 0; j < cost[i].size(); ++j) {
      const int64_t w = static_cast<int64_t>((bytes[i][j] + unit - 1) / unit);
      for (int64_t c = w; c <= cap; ++c) {
        const double v = best[c - w] + cost[i][j];
        if (v < next[c]) {
          next[c] = v;
          choice[i][c] = static_cast<uint8_t>(j);
        }
      }
    }
    best.swap(next);
  }
  if (!std::isfinite(best[cap])) {
    fail(
        "the budget of {} bytes cannot hold these tensors once sizes are rounded up to {}-byte "
        "units; raise it "
        "slightly",
        budget, unit);
  }
  std::vector<int> out(n);
  int64_t c = cap;
  for (size_t i = n; i-- > 0;) {
    const int j = choice[i][c];
    out[i] = j;
    c -= static_cast<int64_t>((bytes[i][j] + unit - 1) / unit);
  }
  return out;
}

GgufQuantReport quantize_gguf(model::Model& m, const std::string& text,
                              const std::string& text_path, const GgufQuantOptions& o,
                              const std::string& out_path) {
  const auto t0 = std::chrono::steady_clock::now();
  const model::ModelConfig& c = m.config();
  const bool fixed_types = !o.types_from.empty();
  if (!fixed_types) {
    check_types(o.types);
    // One candidate type leaves nothing to allocate.
    if (o.size > 0 && o.bits > 0)
      fail("quantize --format gguf: give one budget, --size or --bits, not both");
    if (o.kl_cost_windows > 0 && o.size == 0 && o.bits == 0)
      fail("quantize --format gguf: --kl-cost calibrates an allocation; give --size or --bits");
    if (o.size == 0 && o.bits == 0 && o.types.size() > 1) {
      fail("quantize --format gguf: --types {} candidates need a budget, --size or --bits",
           o.types.size());
    }
  }
  if (!(o.sample_rows > 0) || o.sample_rows > 1)
    fail("--sample-rows {}: expected a share of the rows in (0, 1]", o.sample_rows);
  if (o.sample_rows < 1 && (fixed_types || (o.size == 0 && o.bits == 0))) {
    fail(
        "quantize --format gguf: --sample-rows measures candidates for an allocation; it takes a "
        "budget (--size or --bits) and no --types-from");
  }
  std::vector<std::pair<std::regex, DType>> overrides;
  for (const auto& [pattern, type] : o.tensor_types) {
    check_types({type});
    try {
      overrides.emplace_back(std::regex(pattern), type);
    } catch (const std::regex_error& e) {
      fail("--tensor-type '{}': not a regular expression ({})", pattern, e.what());
    }
  }
  for (const auto& layer : m.stored_experts()) {
    for (const auto& e : layer) {
      if (e.factored())
        fail(
            "{}: experts are stored low-rank plus sparse (mcmoe lowrank), which llama.cpp cannot "
            "read",
            m.path());
    }
  }
  const std::map<std::string, DType> given =
      fixed_types ? types_in(o.types_from) : std::map<std::string, DType>{};
  // The candidates of a tensor: the asked types that fit, or the one type --types-from gives.
  auto candidates_for = [&](const std::string& name, int64_t cols) -> std::vector<DType> {
    for (const auto& [re, type] : overrides) {
      if (!std::regex_search(name, re)) continue;
      if (cols % dtype_traits(type).block_size != 0)
        fail("--tensor-type: tensor '{}' has rows of {}, which {} blocks of {} do not fill", name,
             cols, dtype_name(type), dtype_traits(type).block_size);
      return {type};
    }
    if (!fixed_types) return o.types;
    const auto it = given.find(name);
    if (it == given.end())
      fail("{}: no tensor '{}' (--types-from names the type of every tensor)", o.types_from, name);
    const DType t = it->second;
    if (!quant::can_encode(t) && !is_float_type(t))
      fail("{}: tensor '{}' is {}, a type mcmoe does not write yet", o.types_from, name,
           dtype_name(t));
    if (cols % dtype_traits(t).block_size != 0)
      fail("{}: tensor '{}' is {}, whose blocks do not fit its rows of {}", o.types_from, name,
           dtype_name(t), cols);
    return {t};
  };

  // Statistics: a forward pass over calibration windows, or llama.cpp's importance matrix.
  const bool from_imatrix = !o.imatrix.empty();
  if (o.kl_cost_windows > 0 && (from_imatrix || fixed_types)) {
    fail(
        "quantize --format gguf: --kl-cost measures KL on calibration text for an allocation; "
        "it takes no {}",
        from_imatrix ? "--imatrix" : "--types-from");
  }
  ImportanceMatrix given_means;
  double fallback = 0;
  std::vector<std::vector<int32_t>> windows;
  std::unique_ptr<LayerStream> stream;
  if (from_imatrix) {
    given_means = read_imatrix(o.imatrix);
    double sum = 0, n = 0;
    for (const auto& [k, v] : given_means.means) {
      for (float x : v) sum += x;
      n += static_cast<double>(v.size());
    }
    fallback = n > 0 ? sum / n : 1.0;
  } else {
    windows = sample_windows(m, text, text_path, o.sampling);
    stream = std::make_unique<LayerStream>(m, windows, o.threads);
  }
  ThreadPool own_pool(stream ? 1 : o.threads);
  // The pass's session's pool (a second pass over sampled rows has its own session).
  ThreadPool* pool = stream ? &stream->session().pool() : &own_pool;
  // The importance-matrix means of expert `e` of a tensor with `parts` parts of `cols`
  // columns (empty when the file has no such entry, or one of another size).
  auto means_of = [&](const std::string& name, int e, int parts,
                      int64_t cols) -> std::span<const float> {
    const auto it = given_means.means.find(name);
    if (it == given_means.means.end() || static_cast<int64_t>(it->second.size()) != parts * cols)
      return {};
    return std::span<const float>(it->second)
        .subspan(static_cast<size_t>(e * cols), static_cast<size_t>(cols));
  };
  Spill spill(out_path);
  Measurer measure(o, spill, *pool, fallback);
  std::vector<Item> items;
  const bool sampled = o.sample_rows < 1;
  const int steps = c.n_layer * (sampled ? 2 : 1) + (o.kl_cost_windows > 0 ? 3 : 2);
  const auto t_start = std::chrono::steady_clock::now();

  // Walks layer l's allocated matrices, each expert's slice of a stacked tensor as one part,
  // with the statistics each is measured under (s: the calibration's pass, null with
  // --imatrix), creating the items on the first walk and finding them by name after.
  using PartFn = std::function<void(Item&, const DenseMatrix&, const HessianAccumulator*,
                                    std::span<const float>)>;
  std::map<std::string, size_t> index_of;
  // A layer's tensors the allocation covers: its matrices but the routers (kept as stored).
  auto allocated = [](const TensorSlot& sl) {
    return sl.matrix && sl.view->valid() && sl.role != TensorRole::Router &&
           sl.kind != TensorKind::ShexpRouter;
  };
  // --kl-cost on sampled rows: each tensor's reference (the candidate nearest the budget's
  // average) is quantized whole in the first pass, so it is chosen before the exact budget is
  // known: --bits, or --size over the allocated weights (the bytes kept as stored left out).
  double reference_bpw = o.bits;
  if (sampled && o.kl_cost_windows > 0 && o.size > 0) {
    const model::ModelWeights& W = m.weights();
    int64_t params =
        W.tok_embd.numel() + (!c.tie_embeddings && W.output.valid() ? W.output.numel() : 0);
    for (int l = 0; l < c.n_layer; ++l) {
      model::for_each_layer_tensor(c, l, W.layers[l], m.stored_experts()[l],
                                   [&](const TensorSlot& sl) {
                                     if (allocated(sl)) params += sl.view->numel();
                                   });
    }
    reference_bpw =
        8.0 * static_cast<double>(o.size) / static_cast<double>(std::max<int64_t>(params, 1));
  }
  auto walk_layer = [&](LayerStream* s, int l, const PartFn& fn) {
    const model::LayerWeights& L = m.weights().layers[l];
    const std::vector<moe::ExpertWeights>& experts = m.stored_experts()[l];
    LayerInputs in(c.experts(l));
    struct Matrix {
      TensorSlot slot;
      const HessianAccumulator* gram = nullptr;
      size_t item = 0;
    };
    std::vector<Matrix> matrices;
    std::map<TensorKind, size_t> expert_items;  // projection kind → item
    auto item_for = [&](const std::string& name, const TensorSlot& sl, int parts) {
      const auto found = index_of.find(name);
      if (found != index_of.end()) return found->second;
      index_of[name] = items.size();
      items.push_back(
          make_item(name, l, sl.kind, sl.shape, candidates_for(name, sl.shape.back()), parts));
      if (sampled && o.kl_cost_windows > 0)
        items.back().full_reference = gguf::kl_reference(items.back(), reference_bpw, false);
      return items.size() - 1;
    };
    model::for_each_layer_tensor(c, l, L, experts, [&](const TensorSlot& sl) {
      if (!allocated(sl)) return;
      if (sl.role == TensorRole::RoutedExpert) {
        if (sl.expert != 0) return;
        expert_items[sl.kind] = item_for(model::stacked_expert_name(sl.kind, l), sl, c.experts(l));
        return;
      }
      Matrix& x = matrices.emplace_back(Matrix{.slot = sl, .item = item_for(sl.name, sl, 1)});
      if (*sl.input != '\0') x.gram = &in.want(sl.input, sl.shape.back());
    });
    if (s) s->observe_layer(l, &in);
    // Matrices that read one intermediate next to each other, so they share its factor.
    std::stable_sort(matrices.begin(), matrices.end(), [](const Matrix& a, const Matrix& b) {
      return std::string_view(a.slot.input) < std::string_view(b.slot.input);
    });
    for (const Matrix& x : matrices) fn(items[x.item], to_dense(*x.slot.view), x.gram, {});
    measure.forget_factor();

    for (int e = 0; e < c.experts(l); ++e) {
      const DenseExpert dense = routed_expert_to_dense(c, experts[e]);
      const std::vector<float>& rows = in.expert_rows[e];
      const int64_t n_rows = static_cast<int64_t>(rows.size()) / c.n_embd;
      HessianAccumulator h_in(c.n_embd), h_ff(dense.down.cols);
      if (s && n_rows > 0) {
        h_in.add(rows.data(), n_rows);
        std::vector<float> g, u;
        for (int64_t r0 = 0; r0 < n_rows; r0 += 512) {
          const int64_t nr = std::min<int64_t>(512, n_rows - r0);
          expert_hidden(dense, rows.data() + r0 * c.n_embd, nr, *pool, g, u);
          h_ff.add(g.data(), nr);
        }
      }
      for (const auto& [kind, idx] : expert_items) {
        const DenseMatrix* w = kind == TensorKind::ExpGate   ? &dense.gate
                               : kind == TensorKind::ExpUp   ? &dense.up
                               : kind == TensorKind::ExpDown ? &dense.down
                                                             : nullptr;
        if (!w)
          fail("internal: quantize_gguf: expert tensor kind {} of layer {}", static_cast<int>(kind),
               l);
        fn(items[idx], *w, kind == TensorKind::ExpDown ? &h_ff : &h_in,
           means_of(items[idx].name, e, c.experts(l), w->cols));
      }
      measure.forget_factor();
    }
    if (s && l + 1 < c.n_layer) s->run_layer(l, nullptr);
  };

  for (int l = 0; l < c.n_layer; ++l) {
    if (o.progress)
      o.progress(l, steps,
                 sampled ? fmt::format("layer {}, candidates on sampled rows", l)
                         : fmt::format("layer {}", l));
    walk_layer(stream.get(), l,
               [&](Item& it, const DenseMatrix& w, const HessianAccumulator* h,
                   std::span<const float> given) { measure.add_part(it, w, h, given, sampled); });
  }

  // The output head reads the final norm of the last layer's output; the embeddings are
  // weighted by token counts.
  if (o.progress) o.progress(c.n_layer, steps, "embeddings and output head");
  if (stream && c.n_layer > 0) stream->run_layer(c.n_layer - 1, nullptr);
  const model::ModelWeights& W = m.weights();
  {
    std::vector<double> counts(static_cast<size_t>(W.tok_embd.rows()), fallback);
    for (const auto& w : windows)
      for (int32_t t : w)
        if (t >= 0 && t < static_cast<int32_t>(counts.size())) counts[t] += 1;
    const std::string name = "token_embd.weight";
    Item it = make_item(name, -1, TensorKind::TokenEmbd, W.tok_embd.shape,
                        candidates_for(name, W.tok_embd.cols()));
    measure_embeddings(it, W.tok_embd, counts, o, spill, *pool);
    items.push_back(std::move(it));
  }
  HessianAccumulator h_out(c.n_embd);
  if (!c.tie_embeddings && W.output.valid()) {
    for (int s = 0; stream && s < stream->n_samples(); ++s) {
      std::vector<float> normed(static_cast<size_t>(stream->seq() * c.n_embd));
      const std::span<float> x = stream->hidden(s);
      for (int64_t r = 0; r < stream->seq(); ++r) {
        ops::rms_norm(x.data() + r * c.n_embd, static_cast<const float*>(W.output_norm.data),
                      normed.data() + r * c.n_embd, c.n_embd, c.rms_eps);
      }
      h_out.add(normed.data(), stream->seq());
    }
    const std::string name = "output.weight";
    Item it = make_item(name, -1, TensorKind::Output, W.output.shape,
                        candidates_for(name, W.output.cols()));
    measure.add_part(it, to_dense(W.output), stream ? &h_out : nullptr,
                     means_of(name, 0, 1, W.output.cols()));
    measure.forget_factor();
    items.push_back(std::move(it));
  }
  for (const Item& it : items) {
    if (it.candidates.empty()) {
      fail(
          "{}: tensor '{}' has rows of {} weights, which fill the blocks of none of the --types; "
          "add a type with "
          "blocks of 32 (q8_0, q5_0, q4_0, iq4_nl)",
          m.path(), it.name, it.cols);
    }
  }

  // The file as it would be with each tensor at candidate `pick(item)`.
  const uint8_t* base = spill.data();
  model::ModelTensors t;
  t.weights = m.weights();
  t.experts = m.stored_experts();
  auto install = [&](const std::function<int(const Item&)>& pick) {
    for (const Item& it : items)
      gguf::place_candidate(c, it, it.candidates[pick(it)], base, t.weights, t.experts);
  };
  GgufQuantReport rep;
  const std::string name = std::filesystem::path(out_path).stem().string();
  std::vector<std::pair<std::string, format::GgufValue>> kv;
  kv.emplace_back("mcmoe.quant.method", format::GgufValue::str(o.gptq ? "gptq-ggml" : "rtn-ggml"));
  kv.emplace_back("mcmoe.quant.codebook_rounding",
                  format::GgufValue::str(o.gptq && o.codebook_gptq ? "gptq" : "block"));
  kv.emplace_back("mcmoe.calibration.text",
                  format::GgufValue::str(from_imatrix ? o.imatrix : text_path));
  kv.emplace_back("mcmoe.calibration.samples",
                  format::GgufValue::u32(static_cast<uint32_t>(o.sampling.samples)));
  kv.emplace_back("mcmoe.calibration.seq",
                  format::GgufValue::u32(static_cast<uint32_t>(o.sampling.seq)));
  if (o.kl_cost_windows > 0) {
    kv.emplace_back("mcmoe.quant.kl_cost_windows",
                    format::GgufValue::u32(static_cast<uint32_t>(o.kl_cost_windows)));
  }
  // llama.cpp's file_type names one type for the whole file; 1024 is none of its presets
  // (it then describes the file by its tensors).
  constexpr uint32_t kFileType = 1024;

  std::vector<int> pick(items.size(), 0);
  std::vector<std::vector<double>> cost(items.size());
  std::vector<gguf::TensorKl> kl;
  if (!fixed_types && (o.size > 0 || o.bits > 0)) {
    install([](const Item&) { return 0; });
    uint64_t at_first = 0;
    for (const Item& it : items) {
      rep.allocated_params += it.params;
      at_first += aligned(it.candidates[0].bytes);
    }
    const uint64_t fixed = model::model_gguf_size(m, t, name, kFileType, kv) - at_first;
    if (o.size > 0) {
      if (o.size <= fixed) {
        fail("--size {}: the tensors kept as stored and the metadata alone take {} bytes", o.size,
             fixed);
      }
      rep.budget = o.size - fixed;
    } else {
      rep.budget = static_cast<uint64_t>(o.bits * static_cast<double>(rep.allocated_params) / 8.0);
    }
    std::vector<std::vector<uint64_t>> sizes(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      for (const Candidate& cand : items[i].candidates) {
        cost[i].push_back(cand.error);
        sizes[i].push_back(aligned(cand.bytes));
      }
    }
    if (o.kl_cost_windows > 0) {
      // Windows spread over the calibration's, so the KL sees the whole text.
      std::vector<std::vector<int32_t>> kl_windows;
      const size_t n = std::min(windows.size(), static_cast<size_t>(o.kl_cost_windows));
      for (size_t k = 0; k < n; ++k) kl_windows.push_back(windows[k * windows.size() / n]);
      const double target_bpw =
          8.0 * static_cast<double>(rep.budget) / static_cast<double>(rep.allocated_params);
      kl = gguf::measure_tensor_kl(
          m, items, base, kl_windows, target_bpw, o.threads, [&](int64_t done, int64_t total) {
            if (o.progress)
              o.progress(c.n_layer + 1, steps,
                         fmt::format("KL of each tensor alone, {}/{}", done, total));
          });
      cost = gguf::kl_scaled_costs(items, kl);
    }
    pick = solve_byte_budget(cost, sizes, rep.budget);
  } else {
    for (const Item& it : items) rep.allocated_params += it.params;
  }
  for (size_t i = 0; i < items.size(); ++i) items[i].chosen = pick[i];
  rep.measure_seconds = seconds_since(t_start);
  if (sampled) {
    rep.notes.push_back(fmt::format(
        "decoder matrices' candidates measured on {:.3g}% of their rows (at least {} per matrix "
        "or expert): their errors and costs are estimates; the file holds every row at the chosen "
        "type",
        100 * o.sample_rows, gguf::kMinSampledRows));
  }

  // Sampled rows: the chosen types over every row, in a second pass over the calibration
  // (holding every layer's Hessians until the allocation has chosen would take more memory
  // than a large model's weights).
  std::unique_ptr<Spill> chosen;
  const uint8_t* chosen_base = nullptr;
  if (sampled) {
    const auto t_finish = std::chrono::steady_clock::now();
    chosen = std::make_unique<Spill>(out_path, "chosen");
    stream.reset();  // one pass's residual streams in memory at a time
    if (!from_imatrix) {
      stream = std::make_unique<LayerStream>(m, windows, o.threads);
      pool = &stream->session().pool();
      measure.set_pool(*pool);
    }
    const int first = c.n_layer + 1 + (o.kl_cost_windows > 0 ? 1 : 0);
    for (int l = 0; l < c.n_layer; ++l) {
      if (o.progress)
        o.progress(first + l, steps, fmt::format("layer {}, the chosen types over every row", l));
      walk_layer(
          stream.get(), l,
          [&](Item& it, const DenseMatrix& w, const HessianAccumulator* h,
              std::span<const float> given) { measure.finish_part(it, w, h, given, *chosen); });
    }
    // Nothing to map when every sampled tensor kept its whole reference.
    if (chosen->size() > 0) chosen_base = chosen->data();
    rep.finish_seconds = seconds_since(t_finish);
  }
  for (const Item& it : items) {
    if (!it.final_parts.empty()) {
      Candidate whole = it.candidates[it.chosen];
      whole.parts = it.final_parts;
      gguf::place_candidate(c, it, whole, chosen_base, t.weights, t.experts);
    } else {
      gguf::place_candidate(c, it, it.candidates[it.chosen], base, t.weights, t.experts);
    }
  }

  if (o.progress) o.progress(steps - 1, steps, "writing");
  model::write_model_gguf(m, t, name, kFileType, kv, out_path);
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    const Candidate& ch = it.candidates[it.chosen];
    GgufTensorReport r{.name = it.name,
                       .params = it.params,
                       .type = ch.type,
                       .bytes = ch.bytes,
                       .error = ch.error,
                       .energy = it.energy,
                       .candidates = {}};
    if (!kl.empty() && kl[i].reference >= 0) {
      r.kl = kl[i].kl;
      r.kl_type = it.candidates[static_cast<size_t>(kl[i].reference)].type;
    }
    r.cost = cost[i].empty() ? ch.error : cost[i][it.chosen];
    for (const Candidate& cand : it.candidates)
      r.candidates.push_back({cand.type, cand.bytes, cand.error});
    rep.allocated_bytes += ch.bytes;
    rep.total_error += ch.error;
    rep.total_cost += r.cost;
    rep.tensors.push_back(std::move(r));
  }
  rep.file_bytes = std::filesystem::file_size(out_path);
  if (!o.save_imatrix.empty() && stream) {
    ImportanceMatrix im;
    im.chunks = stream->n_samples();
    im.dataset = text_path;
    for (const Item& it : items) {
      if (it.kind == TensorKind::TokenEmbd) continue;  // looked up, not multiplied
      if (it.partial) {
        rep.notes.push_back(
            fmt::format("{}: left out of {} (an expert no calibration token reached)", it.name,
                        o.save_imatrix));
        continue;
      }
      im.means[it.name] = it.means;
    }
    write_imatrix(o.save_imatrix, im);
  }
  rep.quantize_seconds = measure.seconds();
  rep.seconds = seconds_since(t0);
  return rep;
}

}  // namespace mcmoe::compress
