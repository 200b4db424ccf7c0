#pragma once
// An inference session over a Model: KV cache, scratch buffers, thread pool. eval() runs a
// batch of tokens (prefill) or one token (decode) through the one forward path; with
// n_seq > 1, eval_batch() runs the tokens of several independent sequences (the server's
// slots) in one forward pass, each against its own KV cache.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "model/observer.h"
#include "moe/odp.h"
#include "moe/router.h"
#include "ops/attention.h"
#include "ops/rope.h"

namespace mcmoe::model {

// The context a session gets when none is asked for: min(n_ctx_train, 4096).
inline int default_context(const ModelConfig& c) {
  return std::min(c.n_ctx_train, 4096);
}

// KV cache bytes per token over all layers for a cache of `cache_type` elements: k + v per kv
// head (GQA), the latent (MLA).
size_t kv_cache_bytes_per_token(const ModelConfig& c, DType cache_type);

struct SessionOptions {
  int n_ctx = 0;  // 0: default_context()
  int n_threads = 2;
  int n_batch = 512;    // tokens per forward chunk during prefill
  ForwardObserver* observer = nullptr;
  // Online dynamic pruning of low-weight experts; null: off. Must outlive the session.
  const moe::OdpParams* odp = nullptr;
  // Cache-aware routing (moe::prefer_cached): an uncached pick is replaced by a cached expert
  // whose routing score is within this relative margin of it; 0: off (routing unchanged).
  float cache_aware_margin = 0.f;
  // Multi-head latent attention (DeepSeek): absorbed (attention over the cached latents,
  // W_UK folded into the query) or naive (the latents expanded to per-head K and V first);
  // kAuto picks the cheaper for each batch: absorbed for decode, naive for long prefills
  // when the file keeps kv_b whole. Both read the same latent cache.
  enum class MlaMode { kAuto, kAbsorbed, kNaive } mla_mode = MlaMode::kAuto;
  // Element type of the KV cache: f32, f16 or q8_0 (ggml's blocks of 32). Attention widens
  // cached blocks to f32 before its products, so only the stored values are rounded.
  DType cache_type = DType::F32;
  // Independent sequences, each with its own KV cache of n_ctx positions (allocated at
  // construction: n_seq × kv_cache_bytes_per_token × n_ctx).
  int n_seq = 1;
};

// One sequence's share of a multi-sequence batch (Session::eval_batch).
struct SeqTokens {
  int seq = 0;
  std::span<const int32_t> tokens;
};

class Session {
 public:
  Session(Model& model, const SessionOptions& options);
  ~Session();

  // Appends tokens at positions n_past()...; returns logits [n_out, n_vocab] where n_out is
  // tokens.size() when all_logits, else 1 (the last token). Valid until the next call.
  // Sequence 0.
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits);
  // Appends each entry's tokens to its sequence, all in one forward pass: the non-attention
  // work (projections, routing, experts) runs over every row at once, so an expert picked
  // by several sequences is read once; attention runs per sequence over its own cache.
  // Returns the logits of each entry's last token, [batch.size(), n_vocab]. At most n_batch()
  // tokens in all; each sequence at most once. Every per-row op is batch invariant
  // (kernels/tile_walk.h; a session of several sequences keeps float products off OpenBLAS,
  // kernels::set_batch_invariant), so a sequence gets the same bits as when it runs alone
  // with the same chunks.
  std::span<const float> eval_batch(std::span<const SeqTokens> batch);
  int64_t n_past() const { return n_past_[0]; }
  int64_t n_past(int seq) const { return n_past_.at(static_cast<size_t>(seq)); }
  int n_seq() const { return static_cast<int>(n_past_.size()); }

  // Layer-streamed passes (calibration, layer-sequential quantization): the token
  // embeddings of a sequence, x [tokens.size(), n_embd]; then one decoder layer applied in
  // place to the residual stream x [n, n_embd] of one sequence starting at position 0
  // (n <= n_batch). Only that layer's weights are touched, so a pass over all layers one at
  // a time reads each layer once even when the model is larger than memory.
  void embed(std::span<const int32_t> tokens, float* x) const;
  void eval_layer(int layer, float* x, int64_t n);
  int n_ctx() const { return n_ctx_; }
  // KV cache bytes per token over all layers: k + v per kv head (GQA), the latent (MLA), in
  // the cache's element type.
  size_t kv_cache_bytes_per_token() const;
  DType cache_type() const { return cache_type_; }
  // Bytes of the KV cache, allocated (and touched) for n_ctx() tokens of each sequence at
  // construction.
  size_t kv_cache_bytes() const {
    return kv_cache_bytes_per_token() * static_cast<size_t>(n_ctx_) * n_past_.size();
  }
  // Bytes of the per-batch scratch buffers, sized for n_batch() tokens at construction:
  // prefill runs in chunks of n_batch tokens, so this bounds the activations of any prompt.
  // (Logits are extra: n_vocab floats per returned row.)
  size_t scratch_bytes() const;
  int n_batch() const { return n_batch_; }
  void reset() { std::fill(n_past_.begin(), n_past_.end(), 0); }
  void reset(int seq) { n_past_.at(static_cast<size_t>(seq)) = 0; }
  // Forgets a sequence's positions from n on (keeps its first n: a shared prompt prefix).
  void truncate(int seq, int64_t n) {
    int64_t& past = n_past_.at(static_cast<size_t>(seq));
    past = std::clamp<int64_t>(n, 0, past);
  }
  ThreadPool& pool() { return pool_; }
  Model& model() { return model_; }
  void set_observer(ForwardObserver* o) { observer_ = o; }
  ForwardObserver* observer() const { return observer_; }
  const moe::OdpCounters& odp_counters() const { return odp_counters_; }
  const moe::CacheAwareCounts& cache_aware_counts() const { return cache_aware_counts_; }

 private:
  // The rows of the batch in flight that belong to one sequence: rows [row0, row0 + n) at
  // positions pos0... of sequence seq. probs: offset of its attention probabilities in
  // Scratch::att_probs for ODP's token protection, -1 when not kept.
  struct Segment {
    int seq = 0;
    int64_t row0 = 0, n = 0, pos0 = 0;
    int64_t probs = -1;
  };
  // Runs the rows of segments_ (their embeddings gathered in order) through every layer;
  // logits of the rows out_rows (ascending) go to logits_out [out_rows.size(), n_vocab].
  void forward(const int32_t* tokens, int64_t n, std::span<const int64_t> out_rows,
               float* logits_out);
  void attention_block(int layer, int64_t n);
  void attention_gqa(int layer, int64_t n);
  void attention_mla(int layer, int64_t n);
  // Attention of one segment's query rows against its sequence's cache; writes its rows of
  // ap.out (and ODP's probabilities).
  void attend(int layer, Segment& seg, ops::AttentionParams& ap);
  // Layer l's key (or MLA latent) and value cache of one sequence.
  uint8_t* k_cache(int layer, int seq);
  uint8_t* v_cache(int layer, int seq);
  void moe_block(int layer, int64_t n);
  // Gate/up/down of one dense MLP over rows x [n, n_embd] into out [n, n_embd].
  void dense_mlp(int layer, const moe::ExpertWeights& w, int64_t ff, const float* x, int64_t n, float* out,
                 const char* hidden_name);
  // Gate/up/down of the active experts `chunk` (each owns a contiguous run of rows; the chunk
  // need not be one run), plus the shared expert when with_shared.
  void experts_chunk(int layer, int64_t n, std::span<const int> chunk, bool with_shared);

  Model& model_;
  const ModelConfig& cfg_;
  int n_ctx_;
  int n_batch_;
  ThreadPool pool_;
  ForwardObserver* observer_;
  const moe::OdpParams* odp_;
  moe::OdpCounters odp_counters_;
  float cache_aware_margin_;
  moe::CacheAwareCounts cache_aware_counts_;
  std::vector<int64_t> n_past_;  // [n_seq]
  std::vector<Segment> segments_;
  std::vector<int64_t> out_rows_;
  std::vector<int32_t> batch_tokens_;
  // [n_layer] of n_seq per-sequence caches of cache_type_ rows, one after the other. GQA:
  // head-major, [n_head_kv][n_ctx][head_dim] keys and [n_head_kv][n_ctx][head_dim_v] values, so
  // that one head's rows are one contiguous run: decode attention streams them (interleaved heads
  // left a 2 KiB stride that defeated the prefetchers and mapped a key block onto a few L1 sets).
  // MLA: [n_ctx] latents [c_kv | k_pe] (kv_lora_rank + qk_rope) in k_cache_, v_cache_ empty.
  std::vector<std::vector<uint8_t>> k_cache_, v_cache_;
  DType cache_type_;
  ops::RopeTable rope_;
  SessionOptions::MlaMode mla_mode_;
  struct Scratch;
  std::unique_ptr<Scratch> s_;
  std::vector<float> logits_;
};

}  // namespace mcmoe::model
