#include "compress/gguf_kl_cost.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/session.h"
#include "ops/logits.h"

namespace mcmoe::compress::gguf {

int kl_reference(const Item& item, double target_bpw, bool measured) {
  int best = -1;
  double best_gap = 0;
  for (size_t j = 0; j < item.candidates.size(); ++j) {
    const Candidate& cand = item.candidates[j];
    if (is_float_type(cand.type) || (measured && !(cand.error > 0)) || item.params <= 0) continue;
    const DTypeTraits& tr = dtype_traits(cand.type);
    const double bpw =
        measured ? 8.0 * static_cast<double>(cand.bytes) / static_cast<double>(item.params)
                 : 8.0 * static_cast<double>(tr.block_bytes) / static_cast<double>(tr.block_size);
    const double gap = std::abs(bpw - target_bpw);
    if (best < 0 || gap < best_gap ||
        (gap == best_gap && cand.bytes < item.candidates[static_cast<size_t>(best)].bytes)) {
      best = static_cast<int>(j);
      best_gap = gap;
    }
  }
  return best;
}

std::vector<TensorKl> measure_tensor_kl(model::Model& m, const std::vector<Item>& items,
                                        const uint8_t* base,
                                        std::span<const std::vector<int32_t>> windows,
                                        double target_bpw, int threads,
                                        const std::function<void(int64_t, int64_t)>& progress) {
  const model::ModelConfig& c = m.config();
  if (windows.empty()) fail("quantize --kl-cost: no calibration windows");
  size_t max_len = 0;
  for (const auto& w : windows) max_len = std::max(max_len, w.size());
  std::vector<TensorKl> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Item& it = items[i];
    // An item measured on sampled rows has one candidate whole: that one, or none.
    if (!it.sampled) {
      out[i].reference = kl_reference(it, target_bpw);
    } else if (it.full_reference >= 0 &&
               it.candidates[static_cast<size_t>(it.full_reference)].error > 0) {
      out[i].reference = it.full_reference;
    }
  }

  // The model as loaded; every measurement starts from it and returns to it. `scratch` is
  // the same views, into which one item at a time is placed and then put back.
  const model::ModelWeights original = m.weights();
  const std::vector<std::vector<moe::ExpertWeights>> original_experts = m.stored_experts();
  model::ModelWeights scratch = original;
  std::vector<std::vector<moe::ExpertWeights>> scratch_experts = original_experts;
  // Gives the model item's tensors (its layer, or the embeddings and head) as `w` holds them.
  auto install = [&](const Item& it, const model::ModelWeights& w,
                     const std::vector<std::vector<moe::ExpertWeights>>& experts) {
    if (it.layer >= 0) {
      m.replace_layer(it.layer, w.layers[it.layer], experts[it.layer]);
    } else {
      m.mutable_weights().tok_embd = w.tok_embd;
      m.mutable_weights().output = w.output;
    }
  };
  auto logits_of = [&](const std::vector<int32_t>& w) {
    // A session per pass: the expert provider is rebuilt by replace_layer.
    model::Session s(m, {.n_ctx = static_cast<int>(max_len),
                         .n_threads = threads,
                         .n_batch = static_cast<int>(max_len)});
    const std::span<const float> l = s.eval(w, true);
    return std::vector<float>(l.begin(), l.end());
  };

  const int64_t n_vocab = c.n_vocab;
  const int64_t total =
      static_cast<int64_t>(windows.size()) * static_cast<int64_t>(items.size() + 1);
  int64_t done = 0, tokens = 0;
  for (const auto& w : windows) {
    const int64_t n = static_cast<int64_t>(w.size());
    const std::vector<float> base_logits = logits_of(w);
    tokens += n;
    if (progress) progress(++done, total);
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& it = items[i];
      if (out[i].reference >= 0) {
        place_candidate(c, it, it.candidates[static_cast<size_t>(out[i].reference)], base, scratch,
                        scratch_experts);
        std::vector<float> q;
        try {
          install(it, scratch, scratch_experts);
          q = logits_of(w);
        } catch (...) {
          install(it, original, original_experts);
          throw;
        }
        install(it, original, original_experts);
        if (it.layer >= 0) {
          scratch.layers[it.layer] = original.layers[it.layer];
          scratch_experts[it.layer] = original_experts[it.layer];
        } else {
          scratch.tok_embd = original.tok_embd;
          scratch.output = original.output;
        }
        for (int64_t t = 0; t < n; ++t) {
          out[i].kl +=
              ops::kl_divergence(std::span<const float>(base_logits).subspan(t * n_vocab, n_vocab),
                                 std::span<const float>(q).subspan(t * n_vocab, n_vocab));
        }
      }
      if (progress) progress(++done, total);
    }
  }
  for (TensorKl& k : out) k.kl /= static_cast<double>(tokens);
  return out;
}

std::vector<std::vector<double>> kl_scaled_costs(const std::vector<Item>& items,
                                                 const std::vector<TensorKl>& kl) {
  if (kl.size() != items.size())
    fail("internal: kl_scaled_costs: {} items, {} measurements", items.size(), kl.size());
  std::vector<double> scales(items.size(), -1);
  std::vector<double> known;
  for (size_t i = 0; i < items.size(); ++i) {
    if (kl[i].reference < 0) continue;
    scales[i] = kl[i].kl / items[i].candidates[static_cast<size_t>(kl[i].reference)].error;
    known.push_back(scales[i]);
  }
  double fallback = 1;
  if (!known.empty()) {
    std::nth_element(known.begin(), known.begin() + static_cast<ptrdiff_t>(known.size() / 2),
                     known.end());
    fallback = known[known.size() / 2];
  }
  std::vector<std::vector<double>> cost(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const double scale = scales[i] >= 0 ? scales[i] : fallback;
    for (const Candidate& cand : items[i].candidates) cost[i].push_back(scale * cand.error);
  }
  return cost;
}

}  // namespace mcmoe::compress::gguf
