#include "api/synth.h"

#include <cmath>
#include <memory>
#include <vector>

#include "api/convert.h"
#include "api/synth_routing.h"
#include "core/error.h"
#include "format/gguf.h"
#include "format/tensor_names.h"
#include "quant/quantize.h"

namespace mcmoe::api {

namespace {

using format::GgufValue;
namespace tn = format::tensor_names;

// splitmix64: fast, and each tensor gets its own stream so output does not depend on the
// order in which tensors are produced.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f) * 2.f - 1.f; }
};

uint64_t hash_name(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

}  // namespace

void synth_model(const SynthOptions& o, const std::string& out_path) {
  const bool qwen = o.arch == "qwen2moe";
  if (o.arch != "mixtral" && !qwen) fail("synth: --arch '{}' not supported (expected mixtral or qwen2moe)", o.arch);
  const int heads = o.heads > 0 ? o.heads : std::max(1, o.dim / 64);
  const int kv_heads = o.kv_heads > 0 ? o.kv_heads : std::max(1, heads / 4);
  auto positive = [](const char* flag, int v) { if (v <= 0) fail("synth: {} must be positive, found {}", flag, v); };
  positive("--layers", o.layers);
  positive("--dim", o.dim);
  positive("--ff", o.ff);
  positive("--experts", o.experts);
  positive("--top-k", o.top_k);
  if (o.top_k > o.experts) fail("synth: --top-k {} exceeds --experts {}", o.top_k, o.experts);
  if (o.dim % heads != 0) fail("synth: --dim {} is not a multiple of --heads {}", o.dim, heads);
  if (heads % kv_heads != 0) fail("synth: --heads {} is not a multiple of --kv-heads {}", heads, kv_heads);
  if ((o.dim / heads) % 2 != 0) fail("synth: head dimension {} must be even", o.dim / heads);
  const int64_t block = dtype_traits(o.type).block_size;
  if (o.dim % block != 0 || o.ff % block != 0) fail("synth: --dim {} and --ff {} must be multiples of the {} block size {}", o.dim, o.ff, dtype_name(o.type), block);
  std::unique_ptr<format::GgufFile> vocab_source;
  int vocab = o.vocab;
  if (!o.tokenizer_from.empty()) {
    vocab_source = std::make_unique<format::GgufFile>(o.tokenizer_from);
    vocab = static_cast<int>(vocab_source->get_array("tokenizer.ggml.tokens").items.size());
  }
  std::unique_ptr<SynthRouting> routing;
  if (!o.routing_from.empty()) {
    if (!vocab_source) fail("synth: --routing-from needs --tokenizer-from (the traced model, whose token ids the trace holds)");
    const offload::RoutingTrace t = offload::read_trace(o.routing_from);
    if (t.n_expert != o.experts) fail("synth: the trace {} has {} experts per layer; --experts is {}", o.routing_from, t.n_expert, o.experts);
    routing = std::make_unique<SynthRouting>(plan_routing(t, vocab, o.routing_noise, o.seed));
    if (routing->n_features() >= o.dim) fail("synth: --dim {} must exceed the {} routing features", o.dim, routing->n_features());
  }
  if (vocab_source == nullptr && o.vocab < 259 + 1) fail("synth: --vocab must be at least 260 (3 control tokens + 256 bytes + 1), found {}", o.vocab);

  format::GgufWriter g;
  const std::string arch = qwen ? "qwen2moe" : "llama";
  const std::string p = arch + ".";
  const int head_dim = o.dim / heads;
  g.set("general.architecture", GgufValue::str(arch));
  g.set("general.name", GgufValue::str("mcmoe-synth"));
  g.set("general.file_type", GgufValue::u32(gguf_file_type(o.type)));
  g.set("general.quantization_version", GgufValue::u32(2));
  g.set("mcmoe.format_version", GgufValue::u32(1));
  g.set(p + "vocab_size", GgufValue::u32(static_cast<uint32_t>(vocab)));
  g.set(p + "context_length", GgufValue::u32(4096));
  g.set(p + "embedding_length", GgufValue::u32(static_cast<uint32_t>(o.dim)));
  g.set(p + "block_count", GgufValue::u32(static_cast<uint32_t>(o.layers)));
  g.set(p + "attention.head_count", GgufValue::u32(static_cast<uint32_t>(heads)));
  g.set(p + "attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(kv_heads)));
  g.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));
  g.set(p + "rope.freq_base", GgufValue::f32(10000.f));
  g.set(p + "rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(head_dim)));
  g.set(p + "expert_count", GgufValue::u32(static_cast<uint32_t>(o.experts)));
  g.set(p + "expert_used_count", GgufValue::u32(static_cast<uint32_t>(o.top_k)));
  if (qwen) {
    g.set(p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(o.shared_ff > 0 ? o.shared_ff : o.ff)));
    g.set(p + "expert_feed_forward_length", GgufValue::u32(static_cast<uint32_t>(o.ff)));
    if (o.shared_ff > 0) g.set(p + "expert_shared_feed_forward_length", GgufValue::u32(static_cast<uint32_t>(o.shared_ff)));
  } else {
    g.set(p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(o.ff)));
  }
  if (vocab_source) {
    for (const auto& [key, value] : vocab_source->metadata()) {
      if (key.starts_with("tokenizer.")) g.set(key, value);
    }
  } else {
    // SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens, then filler
    // pieces "▁a", "▁b", ... so arbitrary text tokenizes (through byte fallback at worst).
    std::vector<GgufValue> tokens, scores, types;
    auto add_token = [&](const std::string& t, float score, int32_t type) {
      tokens.push_back(GgufValue::str(t));
      scores.push_back(GgufValue::f32(score));
      types.push_back(GgufValue::i32(type));
    };
    add_token("<unk>", 0, 2);
    add_token("<s>", 0, 3);
    add_token("</s>", 0, 3);
    for (int b = 0; b < 256; ++b) add_token(fmt::format("<0x{:02X}>", b), 0, 6);
    for (int i = 0; static_cast<int>(tokens.size()) < o.vocab; ++i) {
      std::string piece = "\xe2\x96\x81";  // ▁
      int v = i;
      do {
        piece += static_cast<char>('a' + v % 26);
        v /= 26;
      } while (v > 0);
      add_token(piece, -static_cast<float>(i), 1);
    }
    g.set("tokenizer.ggml.model", GgufValue::str("llama"));
    g.set("tokenizer.ggml.tokens", GgufValue::array(format::GgufType::STRING, std::move(tokens)));
    g.set("tokenizer.ggml.scores", GgufValue::array(format::GgufType::F32, std::move(scores)));
    g.set("tokenizer.ggml.token_type", GgufValue::array(format::GgufType::I32, std::move(types)));
    g.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
    g.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
    g.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
    g.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
    g.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
  }

  const uint64_t seed = o.seed;
  // Uniform weights with variance 1/fan_in keep activations of unit scale through layers.
  // fix(row, values) adjusts a row after drawing it (routing features; see synth_routing.h).
  using RowFix = std::function<void(int64_t row_index, float* row, int64_t cols)>;
  auto random = [&](const std::string& name, DType type, std::vector<int64_t> shape, RowFix fix = nullptr) {
    g.add_tensor(name, type, shape, [name, type, shape, seed, fix](uint8_t* dst, size_t) {
      Rng rng{hash_name(name, seed)};
      const int64_t cols = shape.back();
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
      const float a = std::sqrt(3.f / static_cast<float>(cols));
      std::vector<float> row(static_cast<size_t>(cols));
      const size_t rb = row_bytes(type, cols);
      for (int64_t r = 0; r < rows; ++r) {
        for (auto& x : row) x = a * rng.uniform();
        if (fix) fix(r, row.data(), cols);
        quant::quantize_row(type, row.data(), dst + r * rb, cols);
      }
    });
  };
  auto ones = [&](const std::string& name, int64_t n) {
    g.add_tensor(name, DType::F32, {n}, [n](uint8_t* dst, size_t) {
      auto* f = reinterpret_cast<float*>(dst);
      for (int64_t i = 0; i < n; ++i) f[i] = 1.f;
    });
  };
  const int64_t d = o.dim, q_dim = int64_t{heads} * head_dim, kv_dim = int64_t{kv_heads} * head_dim;
  const SynthRouting* rt = routing.get();
  const int nf = rt ? rt->n_features() : 0;
  // The embedding carries each token's routing features in its first nf coordinates.
  RowFix embed_fix = rt ? RowFix([rt, nf](int64_t v, float* row, int64_t) { std::copy_n(rt->token_features.data() + v * nf, nf, row); }) : nullptr;
  // Layers write into the feature block only at `noise` strength: rows [0, nf) of every
  // matrix that adds to the residual stream (rows % d of a stacked expert tensor).
  RowFix residual_fix = rt ? RowFix([rt, nf, d](int64_t r, float* row, int64_t cols) {
    if (r % d < nf) {
      for (int64_t c = 0; c < cols; ++c) row[c] *= rt->noise;
    }
  }) : nullptr;
  random(tn::kTokenEmbd, o.type, {vocab, d}, embed_fix);
  ones(tn::kOutputNorm, d);
  random(tn::kOutput, o.type, {vocab, d});
  for (int l = 0; l < o.layers; ++l) {
    ones(tn::layer(l, tn::kAttnNorm), d);
    random(tn::layer(l, tn::kAttnQ), o.type, {q_dim, d});
    random(tn::layer(l, tn::kAttnK), o.type, {kv_dim, d});
    random(tn::layer(l, tn::kAttnV), o.type, {kv_dim, d});
    random(tn::layer(l, tn::kAttnOut), o.type, {d, q_dim}, residual_fix);
    if (qwen) {
      random(tn::layer(l, tn::kAttnQBias), DType::F32, {q_dim});
      random(tn::layer(l, tn::kAttnKBias), DType::F32, {kv_dim});
      random(tn::layer(l, tn::kAttnVBias), DType::F32, {kv_dim});
    }
    ones(tn::layer(l, tn::kFfnNorm), d);
    // The router reads only its traced layer's features.
    RowFix router_fix = rt ? RowFix([rt, l, layers = o.layers](int64_t e, float* row, int64_t cols) {
      std::fill_n(row, cols, 0.f);
      row[rt->traced_layer(l, layers) * rt->n_expert + e] = rt->router_scale(l);
    }) : nullptr;
    random(tn::layer(l, tn::kFfnGateInp), DType::F32, {o.experts, d}, router_fix);
    random(tn::layer(l, tn::kFfnGateExps), o.type, {o.experts, o.ff, d});
    random(tn::layer(l, tn::kFfnUpExps), o.type, {o.experts, o.ff, d});
    random(tn::layer(l, tn::kFfnDownExps), o.type, {o.experts, d, o.ff}, residual_fix);
    if (qwen && o.shared_ff > 0) {
      random(tn::layer(l, tn::kFfnGateInpShexp), DType::F32, {d});
      random(tn::layer(l, tn::kFfnGateShexp), o.type, {o.shared_ff, d});
      random(tn::layer(l, tn::kFfnUpShexp), o.type, {o.shared_ff, d});
      random(tn::layer(l, tn::kFfnDownShexp), o.type, {d, o.shared_ff}, residual_fix);
    }
  }
  g.write(out_path, o.progress);
}

}  // namespace mcmoe::api
