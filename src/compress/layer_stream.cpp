#include "compress/layer_stream.h"

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::compress {

std::vector<std::vector<int32_t>> sample_windows(const model::Model& m, const std::string& text,
                                                 const std::string& source, const SampleOptions& o) {
  if (o.samples < 1) fail("calibration: --samples must be at least 1, found {}", o.samples);
  if (o.seq < 2) fail("calibration: --seq must be at least 2, found {}", o.seq);
  const std::vector<int32_t> ids = m.tokenizer().encode(text);
  const int64_t per = o.seq - 1;  // text tokens per window after the BOS
  const int64_t need = per * o.samples;
  if (static_cast<int64_t>(ids.size()) < need) {
    fail("{}: calibration text has {} tokens; --samples {} x --seq {} needs {} (use a longer text or fewer/shorter samples)",
         source, ids.size(), o.samples, o.seq, need);
  }
  // Non-overlapping windows whose starts are spread evenly across the text.
  const int64_t slack = static_cast<int64_t>(ids.size()) - need;
  std::vector<std::vector<int32_t>> out(o.samples);
  for (int s = 0; s < o.samples; ++s) {
    const int64_t start = s * per + (o.samples > 1 ? slack * s / (o.samples - 1) : 0);
    out[s].reserve(o.seq);
    out[s].push_back(m.tokenizer().bos_id());
    out[s].insert(out[s].end(), ids.begin() + start, ids.begin() + start + per);
  }
  return out;
}

namespace {
model::SessionOptions layer_session_options(int64_t seq, int threads) {
  model::SessionOptions so;
  so.n_ctx = static_cast<int>(seq);
  so.n_batch = static_cast<int>(seq);
  so.n_threads = threads;
  return so;
}
}  // namespace

LayerStream::LayerStream(model::Model& m, const std::vector<std::vector<int32_t>>& samples, int threads)
    : model_(m),
      seq_(samples.empty() ? 1 : static_cast<int64_t>(samples[0].size())),
      session_(m, layer_session_options(seq_, threads)) {
  if (samples.empty()) fail("calibration: no samples");
  const int64_t d = m.config().n_embd;
  hidden_.resize(samples.size());
  for (size_t s = 0; s < samples.size(); ++s) {
    if (static_cast<int64_t>(samples[s].size()) != seq_) {
      fail("calibration: sample {} has {} tokens, expected {}", s, samples[s].size(), seq_);
    }
    hidden_[s].resize(static_cast<size_t>(seq_ * d));
    session_.embed(samples[s], hidden_[s].data());
  }
}

void LayerStream::run_layer(int l, model::ForwardObserver* observer, const std::function<void(int)>& on_sample) {
  session_.set_observer(observer);
  for (int s = 0; s < n_samples(); ++s) {
    if (on_sample) on_sample(s);
    session_.eval_layer(l, hidden_[s].data(), seq_);
  }
  session_.set_observer(nullptr);
}

void LayerStream::observe_layer(int l, model::ForwardObserver* observer, const std::function<void(int)>& on_sample) {
  session_.set_observer(observer);
  std::vector<float> copy;
  for (int s = 0; s < n_samples(); ++s) {
    if (on_sample) on_sample(s);
    copy = hidden_[s];
    session_.eval_layer(l, copy.data(), seq_);
  }
  session_.set_observer(nullptr);
}

size_t LayerStream::resident_bytes() const {
  size_t b = 0;
  for (const auto& h : hidden_) b += h.size() * sizeof(float);
  return b;
}

}  // namespace mcmoe::compress
