#pragma once
// Calibration samples and a layer-by-layer pass over them. Compression walks the model one
// decoder layer at a time over every sample, keeping only the residual stream of all
// samples in memory ([samples, seq, n_embd] f32) plus one layer's working set, so the
// weights are read once per pass and a mapped model larger than RAM still works.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/observer.h"
#include "model/session.h"

namespace mcmoe::compress {

struct SampleOptions {
  int samples = 64;  // sequences
  int seq = 512;     // tokens per sequence, BOS included
};

// `samples` windows of `seq` tokens: BOS + seq - 1 consecutive text tokens each, spread
// evenly over the whole text (so a long text is sampled throughout, not just its start).
// Fails, naming the file and the counts, when the text is too short.
std::vector<std::vector<int32_t>> sample_windows(const model::Model& m, const std::string& text,
                                                 const std::string& source, const SampleOptions& o);

class LayerStream {
 public:
  // Embeds every sample; threads for the session's matmuls.
  LayerStream(model::Model& m, const std::vector<std::vector<int32_t>>& samples, int threads);

  int n_samples() const { return static_cast<int>(hidden_.size()); }
  int64_t seq() const { return seq_; }
  model::Session& session() { return session_; }
  // The residual stream of sample s entering the next layer: [seq, n_embd].
  std::span<float> hidden(int s) { return hidden_[s]; }

  // Runs layer l over every sample in place; `on_sample(s)` is called before sample s so an
  // observer can tag what it sees with the sample.
  void run_layer(int l, model::ForwardObserver* observer,
                 const std::function<void(int)>& on_sample = nullptr);
  // Runs layer l over copies of the residual streams: observes, leaves the state unchanged.
  void observe_layer(int l, model::ForwardObserver* observer,
                     const std::function<void(int)>& on_sample = nullptr);
  size_t resident_bytes() const;

 private:
  model::Model& model_;
  int64_t seq_ = 0;
  model::Session session_;
  std::vector<std::vector<float>> hidden_;  // [samples][seq * n_embd]
};

}  // namespace mcmoe::compress
