#include "api/open_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "compress/stats.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "core/memory_info.h"
#include "format/gguf.h"
#include "offload/expert_layout.h"

namespace mcmoe::api {

AutoBudget auto_expert_budget(const model::Model& m, const model::SessionOptions& so,
                              const model::Model* fallback, const AvailableMemory& avail) {
  const model::ModelConfig& c = m.config();
  AutoBudget b;
  const std::vector<uint64_t> sizes = offload::expert_cache_bytes(m);
  b.experts = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  b.largest_expert = sizes.empty() ? 0 : *std::max_element(sizes.begin(), sizes.end());
  if (!avail.known()) {
    fail(
        "{}: --expert-cache auto needs to know the memory available, and neither /proc/meminfo nor "
        "a "
        "memory cgroup could be read; give a size (512MiB) or a share (50%)",
        m.path());
  }
  b.available = avail.bytes;
  b.resident = offload::resident_weight_bytes(m);
  const int n_ctx = so.n_ctx > 0 ? so.n_ctx : model::default_context(c);
  b.kv_cache = model::kv_cache_bytes_per_token(c, so.cache_type) * static_cast<uint64_t>(n_ctx) *
               static_cast<uint64_t>(std::max(1, so.n_seq));
  if (fallback) {
    for (const auto& layer : fallback->stored_experts()) {
      for (const auto& e : layer) b.fallback += e.nbytes();
    }
  }
  // Activations, the batch scratch, the tokenizer, allocator slack and page-table growth
  // are not counted one by one: 256 MiB plus 5% of what is available covers them with room.
  b.margin = (256ull << 20) + b.available / 20;
  const uint64_t taken = b.resident + b.kv_cache + b.fallback + b.margin;
  b.budget = b.available > taken ? std::min(b.available - taken, b.experts) : 0;
  auto mib = [](uint64_t x) { return x / 1048576.0; };
  b.arithmetic = fmt::format(
      "expert cache auto: {:.1f} MiB available ({}) - {:.1f} MiB resident weights - {:.1f} MiB KV "
      "cache ({} "
      "tokens, {}) - {:.1f} MiB fallback copy - {:.1f} MiB margin (256 MiB + 5%) = {:.1f} MiB{}, "
      "{:.0f}% of "
      "{:.1f} MiB of experts",
      mib(b.available), avail.describe(), mib(b.resident), mib(b.kv_cache),
      n_ctx * std::max(1, so.n_seq), dtype_name(so.cache_type), mib(b.fallback), mib(b.margin),
      mib(b.available > taken ? b.available - taken : 0),
      b.budget == b.experts ? " (capped at all experts)" : "",
      100.0 * b.budget / std::max<uint64_t>(1, b.experts), mib(b.experts));
  if (b.budget < b.largest_expert) {
    fail(
        "{}: {}; that cannot hold one expert of {:.1f} MiB. Free memory, shorten the context "
        "(--ctx), or run "
        "without offloading",
        m.path(), b.arithmetic, mib(b.largest_expert));
  }
  return b;
}

namespace {

void install_offload(const OpenOptions& oo, OpenModel& out) {
  const OffloadSpec& spec = oo.offload;
  model::Model& m = *out.model;
  const std::vector<uint64_t> sizes = offload::expert_cache_bytes(m);
  const uint64_t total = std::accumulate(sizes.begin(), sizes.end(), uint64_t{0});
  offload::OffloadOptions o;
  if (!spec.fallback.empty()) {
    // Mapped: only the experts the fallback actually serves are ever paged in.
    out.fallback = load_model(spec.fallback, {.memory = model::LoadOptions::Memory::kMap}, oo.log);
    o.fallback = out.fallback.get();
    o.fallback_threshold = spec.fallback_threshold;
  }
  if (spec.budget_auto) {
    const AutoBudget b = auto_expert_budget(m, oo.session, out.fallback.get(), available_memory());
    if (oo.log) oo.log(b.arithmetic);
    o.budget = b.budget;
  } else {
    o.budget = spec.budget_bytes > 0 ? spec.budget_bytes
                                     : static_cast<uint64_t>(spec.budget_fraction * total);
    // The budget as given or as a share of the experts: a cache the machine cannot hold would
    // fill until the OOM killer ends the run, so it is refused before anything is read.
    check_memory_fits(
        o.budget, available_memory(),
        spec.budget_bytes > 0
            ? fmt::format("{}: the expert cache (--expert-cache)", m.path())
            : fmt::format("{}: the expert cache (--expert-cache {:g}% of {:.1f} MiB of experts)",
                          m.path(), 100 * spec.budget_fraction, total / 1048576.0),
        "give a smaller --expert-cache");
  }
  o.policy = spec.policy;
  o.per_layer = spec.per_layer;
  o.prefetch_depth = spec.prefetch_depth;
  o.prefetch_m = spec.prefetch_m > 0 ? spec.prefetch_m : m.config().n_expert_used;
  if (o.prefetch_m > m.config().n_expert) {
    fail("prefetch of {} experts per layer; {} has {}", o.prefetch_m, m.path(),
         m.config().n_expert);
  }
  o.prefetch_min_prob = spec.prefetch_min_prob;
  o.prefetch_fit = spec.prefetch_fit;
  o.prefetch_fit_input = offload::RoutePredictor::fit_input_named(spec.prefetch_fit_input);
  o.io_threads = spec.io_threads;
  o.direct_io = spec.direct_io;
  if (!spec.seed_stats.empty()) {
    const std::string& path = spec.seed_stats;
    const compress::CalibrationStats s = compress::load_stats(path);
    compress::check_stats_match(s, m, path);
    // A prior worth a few hundred tokens: enough to start warm, little enough to adapt.
    constexpr double kPriorTokens = 256;
    // Indexed as the cache names experts (layer * stride + expert): a dense layer, or a
    // reduced layer with fewer experts, leaves its ids at 0.
    const size_t stride = static_cast<size_t>(offload::expert_stride(m));
    o.lfu_seed.assign(m.stored_experts().size() * stride, 0.0);
    if (s.layers.size() != m.stored_experts().size()) {
      fail("{}: statistics for {} layers; {} has {}", path, s.layers.size(), m.path(),
           m.stored_experts().size());
    }
    for (size_t l = 0; l < s.layers.size(); ++l) {
      const compress::LayerStats& L = s.layers[l];
      if (L.experts.size() != m.stored_experts()[l].size()) {
        fail("{}: layer {} has statistics for {} experts; {} stores {} there", path, l,
             L.experts.size(), m.path(), m.stored_experts()[l].size());
      }
      for (size_t e = 0; e < L.experts.size(); ++e) {
        o.lfu_seed[l * stride + e] =
            L.phi(static_cast<int>(e)) * m.config().n_expert_used * kPriorTokens;
      }
    }
  }
  auto p = std::make_unique<offload::OffloadingProvider>(m, o);
  out.provider = p.get();
  if (oo.log) {
    oo.log(fmt::format(
        "offloading experts: cache {:.1f} MiB of {:.1f} MiB ({:.0f}%), policy {}{}, prefetch {} "
        "layer(s) top-{}, {} I/O{}",
        o.budget / 1048576.0, total / 1048576.0, 100.0 * o.budget / std::max<uint64_t>(1, total),
        o.policy, o.per_layer ? " per layer" : "", o.prefetch_depth, o.prefetch_m,
        p->stats().direct_io ? "O_DIRECT" : "buffered",
        o.fallback ? fmt::format(", low-bit fallback below weight {}", o.fallback_threshold) : ""));
  }
  m.set_expert_provider(std::move(p));
}

// Refuses a context beyond the model's trained length unless allowed (the error says how).
void check_context(const model::Model& m, int n_ctx, bool allow_long_context) {
  const int trained = m.config().n_ctx_train;
  if (n_ctx > trained && !allow_long_context) {
    fail(
        "{}: context {} exceeds the model's trained length {}; positions past it are outside what "
        "the model "
        "learned (pass --allow-long-context to run anyway)",
        m.path(), n_ctx, trained);
  }
}

}  // namespace

std::unique_ptr<model::Model> load_model(const std::string& path, const model::LoadOptions& lo,
                                         const std::function<void(const std::string&)>& log) {
  const auto t0 = std::chrono::steady_clock::now();
  auto m = model::Model::load(path, lo);
  const double s = seconds_since(t0);
  if (log) log(fmt::format("loaded {} in {:.2f} s: {}", path, s, m->config().summary()));
  return m;
}

namespace {

// odp-fit's JSON: {"format": "mcmoe-odp-thresholds", "n_layer": L, "k": K,
// "layers": [{"layer": l, "mu": [K - 1 floats] or null}, ...]}; layers not listed, or with
// null, are not pruned.
void load_odp_thresholds(const std::string& path, const model::ModelConfig& c, moe::OdpParams& p) {
  const nlohmann::json j = read_json_file(path, "the ODP thresholds");
  if (json_string(j, "format") != "mcmoe-odp-thresholds")
    fail("{}: not an mcmoe odp-fit thresholds file (expected \"format\": \"mcmoe-odp-thresholds\")",
         path);
  const auto n_layer = json_integer<int64_t>(j.value("n_layer", nlohmann::json()));
  const auto k = json_integer<int64_t>(j.value("k", nlohmann::json()));
  if (n_layer != c.n_layer || k != c.n_expert_used)
    fail("{}: thresholds for {} layers and top-{}, the model has {} layers and top-{}", path,
         n_layer ? fmt::to_string(*n_layer) : "?", k ? fmt::to_string(*k) : "?", c.n_layer,
         c.n_expert_used);
  p.mu.assign(static_cast<size_t>(c.n_layer) * (c.n_expert_used - 1), 0.f);
  p.layer_on.assign(static_cast<size_t>(c.n_layer), 0);
  if (!j.contains("layers") || !j["layers"].is_array())
    fail("{}: missing the \"layers\" array", path);
  for (const auto& L : j["layers"]) {
    const auto l =
        L.is_object() ? json_integer<int64_t>(L.value("layer", nlohmann::json())) : std::nullopt;
    if (!l || *l < 0 || *l >= c.n_layer)
      fail("{}: a layer entry has no valid \"layer\" in [0, {})", path, c.n_layer);
    const nlohmann::json& mu = L.value("mu", nlohmann::json());
    if (mu.is_null()) continue;
    if (!mu.is_array() || mu.size() != static_cast<size_t>(c.n_expert_used - 1))
      fail("{}: layer {}: \"mu\" should hold {} numbers, found {}", path, *l, c.n_expert_used - 1,
           mu.dump());
    for (size_t i = 0; i < mu.size(); ++i) {
      if (!mu[i].is_number() || !(mu[i].get<double>() >= 0 && mu[i].get<double>() <= 1))
        fail("{}: layer {}: threshold {} is not a number in [0, 1]", path, *l, mu[i].dump());
      p.mu[static_cast<size_t>(*l) * (c.n_expert_used - 1) + i] = mu[i].get<float>();
    }
    p.layer_on[static_cast<size_t>(*l)] = 1;
  }
}

}  // namespace

std::unique_ptr<moe::OdpParams> odp_params(const OdpSpec& spec, const model::Model& m) {
  if (!spec.on) return nullptr;
  const model::ModelConfig& c = m.config();
  if (c.n_expert_used < 2)
    fail("ODP: {} routes each token to {} expert; nothing to prune", m.path(), c.n_expert_used);
  auto p = std::make_unique<moe::OdpParams>();
  p->n_layer = c.n_layer;
  p->k = c.n_expert_used;
  const size_t n_mu = static_cast<size_t>(c.n_layer) * (c.n_expert_used - 1);
  if (!spec.thresholds_file.empty()) {
    if (spec.mu) fail("--odp-mu and --odp-thresholds both set the thresholds; give one");
    load_odp_thresholds(spec.thresholds_file, c, *p);
  } else if (spec.mu) {
    p->mu.assign(n_mu, *spec.mu);
  } else {
    const format::GgufValue* v = m.gguf() ? m.gguf()->find("mcmoe.odp.mu") : nullptr;
    if (!v) {
      fail(
          "--odp: {} has no calibrated thresholds (metadata key mcmoe.odp.mu, written by mcmoe "
          "quantize); "
          "give a fixed one with --odp-mu 0.5",
          m.path());
    }
    const auto* arr = std::get_if<format::GgufArray>(&v->v);
    if (!arr || arr->items.size() != n_mu) {
      fail("{}: mcmoe.odp.mu should be an array of {} floats (layers x (top-k - 1)), found {}",
           m.path(), n_mu, v->to_string());
    }
    for (const auto& item : arr->items) {
      const double* x = std::get_if<double>(&item.v);
      if (!x) fail("{}: mcmoe.odp.mu holds a non-float value", m.path());
      p->mu.push_back(static_cast<float>(*x));
    }
  }
  if (!spec.layers.empty()) {
    p->layer_on.assign(c.n_layer, 0);
    for (int l : spec.layers) {
      if (l < 0 || l >= c.n_layer)
        fail("--odp-layers: layer {} out of range [0, {})", l, c.n_layer);
      p->layer_on[l] = 1;
    }
  }
  p->protect_fraction = spec.protect_fraction;
  return p;
}

OpenModel open_model(const OpenOptions& o) {
  OpenModel out;
  model::LoadOptions lo = o.load;
  if (o.offload.on) lo.memory = model::LoadOptions::Memory::kMap;  // experts are read on demand
  out.model = load_model(o.path, lo, o.log);
  if (o.offload.on) install_offload(o, out);
  out.odp = odp_params(o.odp, *out.model);
  if (!o.with_session) return out;
  check_context(*out.model, o.session.n_ctx, o.allow_long_context);
  model::SessionOptions so = o.session;
  so.odp = out.odp.get();
  so.cache_aware_margin = o.offload.on ? o.offload.cache_aware_margin : 0.f;
  out.session = std::make_unique<model::Session>(*out.model, so);
  if (o.log) {
    const model::Session& s = *out.session;
    o.log(
        fmt::format("KV cache: {:.1f} MiB for {}{} tokens ({} bytes per token, {}); batch scratch: "
                    "{:.1f} MiB for "
                    "{}-token chunks",
                    static_cast<double>(s.kv_cache_bytes()) / (1 << 20),
                    s.n_seq() > 1 ? fmt::format("{} sequences x ", s.n_seq()) : "", s.n_ctx(),
                    s.kv_cache_bytes_per_token(), dtype_name(s.cache_type()),
                    static_cast<double>(s.scratch_bytes()) / (1 << 20), s.n_batch()));
  }
  return out;
}

}  // namespace mcmoe::api
