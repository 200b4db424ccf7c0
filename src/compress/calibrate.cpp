#include "compress/calibrate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "compress/dense.h"
#include "compress/quantizers.h"
#include "core/error.h"

namespace mcmoe::compress {

namespace {

// Collects one layer's routing statistics and routed rows over all samples.
class LayerCollector final : public model::ForwardObserver {
 public:
  LayerCollector(const model::ModelConfig& c, int layer, LayerStats& out)
      : cfg_(c), out_(out), rows_(c.experts(layer)), ratios_(std::max(0, c.n_expert_used - 1)) {
    out_.experts.assign(c.experts(layer), ExpertStats{});
  }
  int sample = 0;

  struct Rows {
    std::vector<float> x;        // [n, n_embd] expert inputs
    std::vector<float> weight;   // [n] routing weight applied to the expert's output
    std::vector<int> sample;     // [n]
  };
  std::vector<Rows>& rows() { return rows_; }
  std::vector<std::vector<float>>& ratios() { return ratios_; }

  void on_routing(const model::RoutingEvent& e) override {
    out_.tokens += e.n_tokens;
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      const int* ids = e.topk_ids + t * e.k;
      const float* p = e.probs + t * e.n_expert;
      for (int j = 0; j < e.k; ++j) {
        if (ids[j] < 0) continue;  // folded into an earlier pick of the same merged expert
        ExpertStats& s = out_.experts[ids[j]];
        ++s.picks;
        s.mass += p[ids[j]];
        if (j > 0) ratios_[j - 1].push_back(p[ids[0]] > 0 ? p[ids[j]] / p[ids[0]] : 0.f);
      }
    }
  }

  void on_expert(const model::ExpertEvent& e) override {
    ExpertStats& s = out_.experts[e.expert];
    Rows& r = rows_[e.expert];
    const int64_t n = static_cast<int64_t>(e.token_rows.size());
    for (int64_t i = 0; i < n * e.n_embd; ++i) s.in_sq += double{e.input[i]} * e.input[i];
    for (int64_t i = 0; i < n * e.n_ff; ++i) s.hidden_sq += double{e.hidden[i]} * e.hidden[i];
    r.x.insert(r.x.end(), e.input, e.input + n * e.n_embd);
    r.weight.insert(r.weight.end(), e.weights, e.weights + n);
    r.sample.insert(r.sample.end(), static_cast<size_t>(n), sample);
  }

 private:
  const model::ModelConfig& cfg_;
  LayerStats& out_;
  std::vector<Rows> rows_;
  std::vector<std::vector<float>> ratios_;
};

std::vector<float> percentiles(std::vector<float>& v) {
  std::vector<float> q(101, 0.f);
  if (v.empty()) return q;
  std::sort(v.begin(), v.end());
  for (int i = 0; i <= 100; ++i) {
    const size_t idx = std::min(v.size() - 1, static_cast<size_t>(std::llround(i / 100.0 * (v.size() - 1))));
    q[i] = v[idx];
  }
  return q;
}

DenseMatrix rtn_copy(const DenseMatrix& w, int bits, int64_t group, double* sq_err) {
  const GroupedQuant q = quantize_rtn(w.data.data(), w.rows, w.cols, QuantSpec{.bits = bits, .group = group});
  DenseMatrix out{w.rows, w.cols, std::vector<float>(w.data.size())};
  dequantize(q, out.data.data());
  double e = 0;
  for (size_t i = 0; i < w.data.size(); ++i) e += double(w.data[i] - out.data[i]) * (w.data[i] - out.data[i]);
  *sq_err = e;
  return out;
}

// ε_{e,b} for every candidate b and the Hessian-trace criterion, from the expert's rows.
void expert_errors(const model::ModelConfig& c, const moe::ExpertWeights& stored,
                   const LayerCollector::Rows& rows, int n_samples,
                   const std::vector<int>& candidates, int64_t group, ThreadPool& pool,
                   ExpertStats& s) {
  const int64_t n = static_cast<int64_t>(rows.weight.size());
  // The expert as the engine runs it (the family's activation, its biases), so ε measures
  // what quantizing its matrices does to the output the model actually adds up.
  const DenseExpert ref = routed_expert_to_dense(c, stored);
  const int64_t d = ref.gate.cols, ff = ref.gate.rows;
  for (int bits : candidates) {
    s.eps[bits] = 0;
    s.hawq[bits] = 0;
  }
  if (n == 0) return;  // never routed: quantizing it changes nothing on this text
  std::vector<float> g, u, y_ref(static_cast<size_t>(n * d)), y_q(static_cast<size_t>(n * d));
  // Reference output from the same f32 path, so ε measures quantization alone.
  expert_forward(ref, rows.x.data(), n, y_ref.data(), pool, g, u);
  for (int bits : candidates) {
    double eg = 0, eu = 0, ed = 0;
    DenseExpert q = ref;  // biases and activation as they are: only the matrices are quantized
    q.gate = rtn_copy(ref.gate, bits, group, &eg);
    q.up = rtn_copy(ref.up, bits, group, &eu);
    q.down = rtn_copy(ref.down, bits, group, &ed);
    expert_forward(q, rows.x.data(), n, y_q.data(), pool, g, u);
    std::vector<double> per_sample(static_cast<size_t>(n_samples), 0.0);
    for (int64_t r = 0; r < n; ++r) {
      double sq = 0;
      for (int64_t c = 0; c < d; ++c) {
        const double diff = double{rows.weight[r]} * (y_ref[r * d + c] - y_q[r * d + c]);
        sq += diff * diff;
      }
      per_sample[rows.sample[r]] += sq;
    }
    // ε = Σ over calibration batches (samples) of the Frobenius norm, not squared (§1).
    double eps = 0;
    for (double v : per_sample) eps += std::sqrt(v);
    s.eps[bits] = eps;
    s.hawq[bits] = s.in_sq / d * (eg + eu) + s.hidden_sq / ff * ed;
  }
}

}  // namespace

uint64_t calibration_memory_bytes(const model::ModelConfig& c, const SampleOptions& s) {
  const uint64_t tokens = uint64_t(s.samples) * s.seq;
  return tokens * c.n_embd * 4 + tokens * c.n_expert_used * (c.n_embd * 4 + 8) +
         uint64_t(6) * c.n_ff * c.n_embd * 4;
}

CalibrationStats calibrate(model::Model& m, const std::string& text, const std::string& text_path,
                           const CalibrateOptions& o) {
  const model::ModelConfig& c = m.config();
  int moe_layers = 0;
  for (int l = 0; l < c.n_layer; ++l) moe_layers += c.is_moe(l) ? 1 : 0;
  if (moe_layers == 0) {
    fail(
        "{}: calibrate measures routed experts, and none of this model's {} layers is an MoE layer "
        "(a dense model)",
        m.path(), c.n_layer);
  }
  if (c.n_expert <= 1) fail("{}: calibrate needs an MoE model; this one has {} expert(s)", m.path(), c.n_expert);
  if (o.candidates.empty()) fail("calibrate: no candidate bit-widths");
  for (int b : o.candidates) {
    if ((b < 1 || b > 4) && b != 8) fail("--candidates: bit-width {} is not one of 1, 2, 3, 4, 8", b);
  }
  for (int64_t cols : {c.n_embd, c.n_ff}) {
    if (cols % o.group != 0) fail("calibrate: --group {} does not divide the expert width {}", o.group, cols);
  }
  CalibrationStats st;
  st.model = fingerprint(m);
  // Absolute, so quantize finds the text from any working directory.
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(text_path, ec);
  st.text = ec ? text_path : abs.lexically_normal().string();
  st.samples = o.sampling.samples;
  st.seq = o.sampling.seq;
  st.group = o.group;
  st.candidates = o.candidates;
  std::sort(st.candidates.begin(), st.candidates.end());
  st.candidates.erase(std::unique(st.candidates.begin(), st.candidates.end()), st.candidates.end());
  const auto windows = sample_windows(m, text, text_path, o.sampling);
  LayerStream stream(m, windows, o.threads);
  st.layers.resize(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    if (!c.is_moe(l)) {
      // A dense layer has no routed experts: empty statistics; it only moves the stream on.
      if (o.progress) o.progress(l, c.n_layer, "dense");
      stream.run_layer(l, nullptr);
      continue;
    }
    if (o.progress) o.progress(l, c.n_layer, "routing");
    LayerCollector col(c, l, st.layers[l]);
    stream.run_layer(l, &col, [&](int s) { col.sample = s; });
    for (auto& r : col.ratios()) st.layers[l].ratio_quantiles.push_back(percentiles(r));
    if (o.progress) o.progress(l, c.n_layer, "errors");
    const auto& experts = m.stored_experts()[l];
    for (int e = 0; e < c.experts(l); ++e) {
      expert_errors(c, experts[e], col.rows()[e], stream.n_samples(), st.candidates, st.group,
                    stream.session().pool(), st.layers[l].experts[e]);
      col.rows()[e] = {};  // release this expert's rows
    }
  }
  if (o.progress) o.progress(c.n_layer, c.n_layer, "done");
  return st;
}

}  // namespace mcmoe::compress
