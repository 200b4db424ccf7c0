#include "offload/trace.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "model/session.h"
#include "offload/expert_layout.h"
#include "offload/predictor.h"

namespace mcmoe::offload {

namespace {

constexpr const char* kMagic = "# mcmoe routing trace v1";

// Fills one window's rows of the trace from the forward pass's hooks.
class TraceRecorder final : public model::ForwardObserver {
 public:
  TraceRecorder(RoutingTrace& t, RoutePredictor& predictor, int64_t row0) : t_(t), predictor_(predictor), row0_(row0) {}
  void on_routing(const model::RoutingEvent& e) override {
    predictor_.observe(e.layer, e.router_logits, e.n_tokens);
    for (int64_t i = 0; i < e.n_tokens; ++i) {
      const int64_t base = (row0_ + i) * t_.n_layer + e.layer;
      for (int j = 0; j < t_.k; ++j) {
        t_.picks[base * t_.k + j] = static_cast<int16_t>(e.topk_ids[i * e.k + j]);
        t_.weights[base * t_.k + j] = e.topk_weights[i * e.k + j];
      }
      std::copy_n(e.probs + i * e.n_expert, e.n_expert, t_.probs.begin() + base * t_.n_expert);
    }
  }
  void on_tensor(std::string_view name, int layer, const float* data, int64_t rows, int64_t cols) override {
    if (name != "layer_out") return;
    std::vector<int> out(t_.m);
    for (int64_t i = 0; i < rows; ++i) {
      for (int a = 1; a <= t_.depth; ++a) {
        const int64_t at = (((row0_ + i) * t_.n_layer + layer) * t_.depth + (a - 1)) * t_.m;
        if (predictor_.predict(layer, a, data + i * cols, t_.m, out.data())) {
          for (int j = 0; j < t_.m; ++j) t_.predicted[at + j] = static_cast<int16_t>(out[j]);
        }
      }
    }
  }

 private:
  RoutingTrace& t_;
  RoutePredictor& predictor_;
  int64_t row0_;
};

}  // namespace

RoutingTrace record_trace(model::Model& m, std::span<const int32_t> tokens, const TraceOptions& o) {
  const model::ModelConfig& c = m.config();
  if (c.n_expert <= 1) fail("{}: trace needs an MoE model; this one has {} expert(s)", m.path(), c.n_expert);
  if (expert_stride(m) == 0) fail("{}: trace records routing; all {} layers of this model are dense", m.path(), c.n_layer);
  if (o.depth < 1 || o.m < 1 || o.m > c.n_expert) {
    fail("trace: --depth {} must be >= 1 and --top-m {} in [1, {}]", o.depth, o.m, c.n_expert);
  }
  RoutingTrace t;
  t.model = m.path();
  t.n_layer = c.n_layer;
  t.n_expert = expert_stride(m);  // reduced models: layers may store fewer
  for (const auto& layer : m.stored_experts()) t.layer_experts.push_back(static_cast<int>(layer.size()));
  t.k = c.n_expert_used;
  t.depth = o.depth;
  t.m = o.m;
  t.expert_bytes = expert_cache_bytes(m);
  const int64_t n = o.max_tokens > 0 ? std::min<int64_t>(o.max_tokens, tokens.size()) : tokens.size();
  if (n == 0) fail("trace: the text has no tokens");
  t.tokens.assign(tokens.begin(), tokens.begin() + n);
  t.picks.assign(n * t.n_layer * t.k, -1);
  t.weights.assign(n * t.n_layer * t.k, 0.f);
  t.probs.assign(n * t.n_layer * t.n_expert, 0.f);
  t.predicted.assign(n * t.n_layer * t.depth * t.m, -1);
  RoutePredictor predictor(m);
  if (o.fit > 0) predictor.enable_fit(o.fit, o.fit_input);
  model::Session s(m, {.n_ctx = o.ctx, .n_threads = o.threads, .n_batch = o.ctx});
  for (int64_t begin = 0; begin < n; begin += o.ctx) {
    const int64_t end = std::min<int64_t>(n, begin + o.ctx);
    TraceRecorder rec(t, predictor, begin);
    s.set_observer(&rec);
    s.reset();
    s.eval(std::span<const int32_t>(t.tokens.data() + begin, end - begin), false);
    s.set_observer(nullptr);
    if (o.progress) o.progress(static_cast<size_t>(end), static_cast<size_t>(n));
  }
  return t;
}

void write_trace(const RoutingTrace& t, const std::string& path) {
  std::vector<int> layer_experts(t.n_layer);
  for (int l = 0; l < t.n_layer; ++l) layer_experts[l] = t.experts_in(l);
  nlohmann::json h{{"model", t.model},   {"n_layer", t.n_layer}, {"n_expert", t.n_expert},
                   {"k", t.k},           {"depth", t.depth},     {"m", t.m},
                   {"n_tokens", t.n_tokens()}, {"layer_experts", layer_experts}, {"expert_bytes", t.expert_bytes}};
  std::ostringstream out;
  out << std::setprecision(std::numeric_limits<float>::max_digits10);  // floats read back exactly
  out << kMagic << "\n" << h.dump() << "\n";
  out << "# token layer | picks(k) | weights(k) | probs(n_expert) | predicted(depth x m)\n";
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    for (int l = 0; l < t.n_layer; ++l) {
      out << t.tokens[i] << ' ' << l << " |";
      for (int16_t e : t.pick(i, l)) out << ' ' << e;
      out << " |";
      for (int j = 0; j < t.k; ++j) out << ' ' << t.weights[(i * t.n_layer + l) * t.k + j];
      out << " |";
      for (float p : t.prob(i, l)) out << ' ' << p;
      out << " |";
      for (int a = 1; a <= t.depth; ++a) {
        for (int16_t e : t.prediction(i, l, a)) out << ' ' << e;
      }
      out << '\n';
    }
  }
  const std::string s = out.str();
  AtomicFileWriter w(path);
  w.write(s.data(), s.size());
  w.commit();
}

RoutingTrace read_trace(const std::string& path) {
  std::ifstream in = open_regular_file(path);
  if (!in) fail("{}: cannot open trace", path);
  std::string line;
  if (!std::getline(in, line) || line != kMagic) fail("{}: not an mcmoe routing trace (first line must be '{}')", path, kMagic);
  RoutingTrace t;
  int64_t n = 0;
  try {
    std::getline(in, line);
    const nlohmann::json h = parse_json(line);
    t.model = h.at("model").get<std::string>();
    const auto field = [&](const char* key) { return fmt::format("{}: line 2: {}", path, key); };
    t.n_layer = json_int<int>(h.at("n_layer"), field("n_layer"));
    t.n_expert = json_int<int>(h.at("n_expert"), field("n_expert"));
    t.k = json_int<int>(h.at("k"), field("k"));
    t.depth = json_int<int>(h.at("depth"), field("depth"));
    t.m = json_int<int>(h.at("m"), field("m"));
    n = json_int<int64_t>(h.at("n_tokens"), field("n_tokens"));
    t.expert_bytes = json_ints<uint64_t>(h.at("expert_bytes"), field("expert_bytes"));
    if (h.contains("layer_experts"))
      t.layer_experts = json_ints<int>(h.at("layer_experts"), field("layer_experts"));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: line 2: bad trace header: {}", path, e.what());
  }
  if (t.n_layer <= 0 || t.n_layer > 4096 || t.n_expert <= 0 || t.n_expert > 4096 || t.k <= 0 || t.k > t.n_expert ||
      t.depth < 0 || t.depth > 64 || t.m <= 0 || t.m > t.n_expert || n < 0 || n > (int64_t{1} << 32)) {
    fail("{}: line 2: inconsistent header (n_layer {}, n_expert {}, k {}, depth {}, m {}, n_tokens {})", path,
         t.n_layer, t.n_expert, t.k, t.depth, t.m, n);
  }
  if (t.expert_bytes.size() != static_cast<size_t>(t.n_layer) * t.n_expert) {
    fail("{}: line 2: expert_bytes has {} entries, expected n_layer x n_expert = {}", path, t.expert_bytes.size(),
         t.n_layer * t.n_expert);
  }
  if (t.layer_experts.empty()) {
    // Traces written before layer_experts was recorded: a layer stores the experts it charges bytes for.
    t.layer_experts.assign(t.n_layer, 0);
    for (int l = 0; l < t.n_layer; ++l) {
      for (int e = 0; e < t.n_expert; ++e) t.layer_experts[l] += t.expert_bytes[static_cast<size_t>(l) * t.n_expert + e] > 0;
    }
  }
  if (t.layer_experts.size() != static_cast<size_t>(t.n_layer)) {
    fail("{}: line 2: layer_experts has {} entries, expected n_layer = {}", path, t.layer_experts.size(), t.n_layer);
  }
  for (int l = 0; l < t.n_layer; ++l) {
    if (t.layer_experts[l] < 0 || t.layer_experts[l] > t.n_expert) {
      fail("{}: line 2: layer_experts[{}] = {} outside [0, n_expert = {}]", path, l, t.layer_experts[l], t.n_expert);
    }
  }
  // Every row takes at least 2 bytes per number: a header claiming more rows than the file
  // can hold is corrupt, and must not make us allocate for them.
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  const uint64_t numbers_per_row = 2 + 2 * static_cast<uint64_t>(t.k) + t.n_expert + static_cast<uint64_t>(t.depth) * t.m;
  if (!ec && static_cast<uint64_t>(n) * t.n_layer * numbers_per_row * 2 > file_size) {
    fail("{}: line 2: header promises {} tokens x {} layers, more than the file's {} bytes can hold", path, n, t.n_layer, file_size);
  }
  t.tokens.resize(n);
  t.picks.resize(n * t.n_layer * t.k);
  t.weights.resize(n * t.n_layer * t.k);
  t.probs.resize(n * t.n_layer * t.n_expert);
  t.predicted.resize(n * t.n_layer * t.depth * t.m);
  std::getline(in, line);  // column comment
  int64_t line_no = 3;
  auto expect_bar = [&](std::istringstream& s) {
    std::string bar;
    if (!(s >> bar) || bar != "|") fail("{}: line {}: malformed row (expected '|')", path, line_no);
  };
  for (int64_t i = 0; i < n; ++i) {
    for (int l = 0; l < t.n_layer; ++l) {
      ++line_no;
      if (!std::getline(in, line)) fail("{}: truncated: {} rows expected, the file ends at line {}", path, n * t.n_layer, line_no);
      std::istringstream s(line);
      int32_t tok = 0;
      int layer = 0;
      if (!(s >> tok >> layer) || layer != l) fail("{}: line {}: expected token and layer {}", path, line_no, l);
      if (l == 0) t.tokens[i] = tok;
      const int64_t base = i * t.n_layer + l;
      auto read_ids = [&](int16_t* dst, int count, int hi) {
        for (int j = 0; j < count; ++j) {
          int v = 0;
          if (!(s >> v) || v < -1 || v >= hi) {
            fail("{}: line {}: expert id missing or outside [-1, {}){}", path, line_no, hi,
                 hi == 0 ? fmt::format(" (layer {} is dense: it picks no experts)", l) : "");
          }
          dst[j] = static_cast<int16_t>(v);
        }
      };
      auto read_floats = [&](float* dst, int count) {
        for (int j = 0; j < count; ++j) {
          if (!(s >> dst[j])) fail("{}: line {}: expected {} numbers", path, line_no, count);
        }
      };
      expect_bar(s);
      // A layer picks among its own experts; a dense layer (0 experts) picks none (-1 only).
      read_ids(t.picks.data() + base * t.k, t.k, t.layer_experts[l]);
      expect_bar(s);
      read_floats(t.weights.data() + base * t.k, t.k);
      expect_bar(s);
      read_floats(t.probs.data() + base * t.n_expert, t.n_expert);
      expect_bar(s);
      read_ids(t.predicted.data() + base * t.depth * t.m, t.depth * t.m, t.n_expert);
    }
  }
  return t;
}

}  // namespace mcmoe::offload
