#include "compress/stats.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "quant/quantize.h"

namespace mcmoe::compress {

using nlohmann::json;

ModelFingerprint fingerprint(const model::Model& m) {
  const model::ModelConfig& c = m.config();
  ModelFingerprint f;
  f.arch = model::arch_gguf_name(c.arch);
  f.n_layer = c.n_layer;
  f.n_expert = c.n_expert;
  f.n_expert_used = c.n_expert_used;
  f.n_embd = c.n_embd;
  f.n_ff = c.n_ff;
  uint64_t h = 1469598103934665603ull;
  std::vector<float> row;
  // Every row of a routing tensor as f32: the router's weights, and the router and selection
  // biases of the families that have them (they change which experts are picked too).
  auto hash_rows = [&](const TensorView& v) {
    if (!v.valid()) return;
    row.resize(static_cast<size_t>(v.cols()));
    for (int64_t r = 0; r < v.rows(); ++r) {
      quant::dequantize_row(v.type, v.row(r), row.data(), v.cols());
      const auto* bytes = reinterpret_cast<const unsigned char*>(row.data());
      for (size_t i = 0; i < row.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
    }
  };
  for (const model::LayerWeights& L : m.weights().layers) {
    hash_rows(L.router);
    hash_rows(L.router_bias);
    hash_rows(L.choice_bias);
  }
  for (const auto& map : c.expert_map) {
    for (int e : map) h = (h ^ static_cast<uint64_t>(e)) * 1099511628211ull;
  }
  f.router_hash = fmt::format("{:016x}", h);
  f.layer_experts = c.layer_experts;
  if (f.layer_experts.empty() && c.has_dense_layers()) {
    // Dense layers hold no routed experts: the per-layer counts say which layers they are.
    for (int l = 0; l < c.n_layer; ++l) f.layer_experts.push_back(c.experts(l));
  }
  return f;
}

std::string describe(const ModelFingerprint& f) {
  return fmt::format("{} with {} layers x {} experts{} (top-{}), n_embd {}, n_ff {}, router hash {}", f.arch,
                     f.n_layer, f.n_expert,
                     f.layer_experts.empty() ? "" : fmt::format(" (per layer {})", fmt::join(f.layer_experts, ",")),
                     f.n_expert_used, f.n_embd, f.n_ff, f.router_hash);
}

double LayerStats::phi(int e) const {
  int64_t total = 0;
  for (const ExpertStats& x : experts) total += x.picks;
  return total > 0 ? static_cast<double>(experts[e].picks) / total : 0.0;
}

double LayerStats::w(int e) const {
  double total = 0;
  for (const ExpertStats& x : experts) total += x.mass;
  return total > 0 ? experts[e].mass / total : 0.0;
}

namespace {

json bits_map(const std::map<int, double>& m) {
  json j = json::object();
  for (const auto& [b, v] : m) j[std::to_string(b)] = v;
  return j;
}

std::map<int, double> bits_map(const json& j, const std::string& where) {
  std::map<int, double> m;
  for (const auto& [k, v] : j.items()) {
    int b = 0;
    try {
      b = std::stoi(k);
    } catch (const std::exception&) {
      fail("{}: key '{}' is not a bit-width", where, k);
    }
    m[b] = v.get<double>();
  }
  return m;
}

}  // namespace

void save_stats(const CalibrationStats& s, const std::string& path) {
  json j;
  j["format"] = "mcmoe-calibration";
  j["version"] = s.version;
  j["model"] = {{"arch", s.model.arch},         {"n_layer", s.model.n_layer},
                {"n_expert", s.model.n_expert}, {"n_expert_used", s.model.n_expert_used},
                {"n_embd", s.model.n_embd},     {"n_ff", s.model.n_ff},
                {"router_hash", s.model.router_hash}};
  if (!s.model.layer_experts.empty()) j["model"]["layer_experts"] = s.model.layer_experts;
  j["text"] = s.text;
  j["samples"] = s.samples;
  j["seq"] = s.seq;
  j["group"] = s.group;
  j["candidates"] = s.candidates;
  json layers = json::array();
  for (const LayerStats& L : s.layers) {
    json experts = json::array();
    for (const ExpertStats& e : L.experts) {
      experts.push_back({{"picks", e.picks}, {"mass", e.mass}, {"in_sq", e.in_sq},
                         {"hidden_sq", e.hidden_sq}, {"eps", bits_map(e.eps)}, {"hawq", bits_map(e.hawq)}});
    }
    layers.push_back({{"tokens", L.tokens}, {"ratio_quantiles", L.ratio_quantiles}, {"experts", experts}});
  }
  j["layers"] = layers;
  const std::string text = j.dump(1);
  AtomicFileWriter out(path);
  out.write(text.data(), text.size());
  out.commit();
}

CalibrationStats load_stats(const std::string& path) {
  const json j = read_json_file(path, "calibration statistics");
  if (json_string(j, "format") != "mcmoe-calibration") {
    fail("{}: not an mcmoe calibration file (key 'format' should be 'mcmoe-calibration')", path);
  }
  CalibrationStats s;
  try {
    const auto integer = [&](const json& parent, const char* key) {
      return json_int<int>(parent.at(key), fmt::format("{}: {}", path, key));
    };
    const auto count = [&](const json& parent, const char* key) {
      return json_int<int64_t>(parent.at(key), fmt::format("{}: {}", path, key));
    };
    s.version = integer(j, "version");
    if (s.version != kStatsVersion) {
      fail("{}: calibration format version {}, this mcmoe reads version {}", path, s.version, kStatsVersion);
    }
    const json& m = j.at("model");
    s.model = {m.at("arch").get<std::string>(),
               integer(m, "n_layer"),
               integer(m, "n_expert"),
               integer(m, "n_expert_used"),
               count(m, "n_embd"),
               count(m, "n_ff"),
               m.at("router_hash").get<std::string>(),
               {}};
    if (m.contains("layer_experts"))
      s.model.layer_experts = json_ints<int>(m.at("layer_experts"), path + ": layer_experts");
    s.text = j.at("text").get<std::string>();
    s.samples = integer(j, "samples");
    s.seq = integer(j, "seq");
    s.group = count(j, "group");
    s.candidates = json_ints<int>(j.at("candidates"), path + ": candidates");
    for (const json& L : j.at("layers")) {
      LayerStats ls;
      ls.tokens = count(L, "tokens");
      ls.ratio_quantiles = L.at("ratio_quantiles").get<std::vector<std::vector<float>>>();
      for (const json& e : L.at("experts")) {
        ExpertStats es;
        es.picks = count(e, "picks");
        es.mass = e.at("mass").get<double>();
        es.in_sq = e.at("in_sq").get<double>();
        es.hidden_sq = e.at("hidden_sq").get<double>();
        es.eps = bits_map(e.at("eps"), path + ": eps");
        es.hawq = bits_map(e.at("hawq"), path + ": hawq");
        ls.experts.push_back(std::move(es));
      }
      s.layers.push_back(std::move(ls));
    }
  } catch (const json::exception& e) {
    fail("{}: malformed calibration statistics: {}", path, e.what());
  }
  if (static_cast<int>(s.layers.size()) != s.model.n_layer) {
    fail("{}: {} layers of statistics, but the model entry says {}", path, s.layers.size(), s.model.n_layer);
  }
  if (!s.model.layer_experts.empty() && static_cast<int>(s.model.layer_experts.size()) != s.model.n_layer) {
    fail("{}: {} per-layer expert counts for {} layers", path, s.model.layer_experts.size(), s.model.n_layer);
  }
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const int expected = s.model.layer_experts.empty() ? s.model.n_expert : s.model.layer_experts[l];
    if (static_cast<int>(s.layers[l].experts.size()) != expected) {
      fail("{}: layer {} has {} experts, expected {}", path, l, s.layers[l].experts.size(), expected);
    }
  }
  return s;
}

void check_stats_match(const CalibrationStats& s, const model::Model& m, const std::string& stats_path) {
  const ModelFingerprint f = fingerprint(m);
  if (!(f == s.model)) {
    fail("{}: these statistics were measured on a different model: stats are for {}; {} is {}", stats_path,
         describe(s.model), m.path(), describe(f));
  }
}

}  // namespace mcmoe::compress
