#include "api/synth.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "api/convert.h"
#include "api/synth_routing.h"
#include "core/error.h"
#include "format/gguf.h"
#include "model/inventory.h"
#include "model/model_writer.h"
#include "quant/quantize.h"

namespace mcmoe::api {

namespace {

using format::GgufValue;
using nlohmann::json;

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

// The model as the family's config.json describes it (the keys its arch file reads).
json family_config(const SynthOptions& o, int heads, int kv_heads, int head_dim, int vocab) {
  json c = {{"vocab_size", vocab},
            {"hidden_size", o.dim},
            {"num_hidden_layers", o.layers},
            {"num_attention_heads", heads},
            {"num_key_value_heads", kv_heads},
            {"head_dim", head_dim},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", o.rope_theta > 0 ? o.rope_theta : 10000.0},
            {"max_position_embeddings", 4096},
            {"tie_word_embeddings", false}};
  const int dense_ff = o.dense_ff > 0 ? o.dense_ff : 4 * o.dim;
  if (o.arch == "mixtral") {
    c.update({{"model_type", "mixtral"},
              {"num_local_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"intermediate_size", o.ff}});
  } else if (o.arch == "qwen2moe") {
    c.update({{"model_type", "qwen2_moe"},
              {"num_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"moe_intermediate_size", o.ff},
              {"shared_expert_intermediate_size", o.shared_ff},
              {"norm_topk_prob", false}});
  } else if (o.arch == "qwen3moe") {
    c.update({{"model_type", "qwen3_moe"},
              {"num_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"moe_intermediate_size", o.ff},
              {"norm_topk_prob", true}});
  } else if (o.arch == "olmoe") {
    c.update({{"model_type", "olmoe"},
              {"num_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"intermediate_size", o.ff}});
  } else if (o.arch == "deepseek2") {
    c.update({{"model_type", o.v3_routing ? "deepseek_v3" : "deepseek_v2"},
              {"n_routed_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"moe_intermediate_size", o.ff},
              {"intermediate_size", dense_ff},
              {"n_shared_experts", o.ff > 0 ? o.shared_ff / o.ff : 0},
              {"first_k_dense_replace", o.dense_layers},
              {"q_lora_rank", o.q_lora > 0 ? json(o.q_lora) : json(nullptr)},
              {"kv_lora_rank", o.kv_lora},
              {"qk_rope_head_dim", o.rope_dim},
              {"qk_nope_head_dim", o.nope_dim},
              {"v_head_dim", o.v_dim},
              {"rms_norm_eps", 1e-6}});
    c["num_key_value_heads"] = heads;
    if (o.v3_routing) {
      c.update({{"scoring_func", "sigmoid"},
                {"topk_method", "noaux_tc"},
                {"n_group", 8},
                {"topk_group", 4},
                {"norm_topk_prob", true},
                {"routed_scaling_factor", 2.5}});
    } else {
      c.update({{"scoring_func", "softmax"},
                {"topk_method", "greedy"},
                {"norm_topk_prob", false},
                {"routed_scaling_factor", 1.0}});
    }
    if (o.yarn) {
      c["max_position_embeddings"] = 163840;
      c["rope_scaling"] = {
          {"type", "yarn"},         {"factor", 40},   {"original_max_position_embeddings", 4096},
          {"beta_fast", 32},        {"beta_slow", 1}, {"mscale", 0.707},
          {"mscale_all_dim", 0.707}};
    }
  } else if (o.arch == "glm4moe") {
    c.update({{"model_type", "glm4_moe"},
              {"n_routed_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"moe_intermediate_size", o.ff},
              {"intermediate_size", dense_ff},
              {"n_shared_experts", o.ff > 0 ? o.shared_ff / o.ff : 0},
              {"first_k_dense_replace", o.dense_layers},
              {"partial_rotary_factor", 0.5},
              {"attention_bias", true},
              {"use_qk_norm", false},
              {"norm_topk_prob", true},
              {"routed_scaling_factor", 1.0},
              {"n_group", 1},
              {"topk_group", 1}});
  } else if (o.arch == "gpt-oss") {
    json types = json::array();
    for (int l = 0; l < o.layers; ++l)
      types.push_back(l % 2 == 0 ? "sliding_attention" : "full_attention");
    c.update({{"model_type", "gpt_oss"},
              {"num_local_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"intermediate_size", o.ff},
              {"sliding_window", 128},
              {"layer_types", types},
              {"swiglu_limit", 7.0},
              {"max_position_embeddings", 131072},
              {"rope_scaling",
               {{"rope_type", "yarn"},
                {"factor", 32.0},
                {"beta_fast", 32.0},
                {"beta_slow", 1.0},
                {"truncate", false},
                {"original_max_position_embeddings", 4096}}}});
    if (o.rope_theta <= 0) c["rope_theta"] = 150000.0;
  } else if (o.arch == "granitemoe") {
    c.update({{"model_type", "granitemoe"},
              {"num_local_experts", o.experts},
              {"num_experts_per_tok", o.top_k},
              {"intermediate_size", o.ff},
              {"embedding_multiplier", 12.0},
              {"residual_multiplier", 0.22},
              {"attention_multiplier", 1.0 / head_dim},
              {"logits_scaling", 6.0},
              {"tie_word_embeddings", true}});
  } else {
    fail(
        "synth: --arch '{}' not supported (expected mixtral, qwen2moe, qwen3moe, olmoe, deepseek2, "
        "glm4moe, gpt-oss or granitemoe)",
        o.arch);
  }
  return c;
}

// The filler SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, then "▁a", "▁b", ...
void write_filler_vocab(format::GgufWriter& g, int vocab) {
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
  for (int i = 0; static_cast<int>(tokens.size()) < vocab; ++i) {
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

}  // namespace

std::vector<std::string> synth_preset_names() {
  return {"deepseek-v2-lite", "deepseek-v3",          "qwen3-30b-a3b", "gpt-oss-20b",
          "glm-4.5-air",      "granite-3.0-1b-a400m", "olmoe-1b-7b",   "mixtral-8x7b"};
}

SynthOptions synth_preset(const std::string& name) {
  SynthOptions o;
  // From the released config.json files.
  if (name == "deepseek-v2-lite") {
    o = {.arch = "deepseek2",
         .layers = 27,
         .dim = 2048,
         .ff = 1408,
         .experts = 64,
         .top_k = 6,
         .vocab = 102400,
         .heads = 16,
         .shared_ff = 2 * 1408,
         .dense_ff = 10944,
         .dense_layers = 1,
         .q_lora = 0,
         .kv_lora = 512,
         .rope_dim = 64,
         .nope_dim = 128,
         .v_dim = 128,
         .yarn = true};
  } else if (name == "deepseek-v3") {
    o = {.arch = "deepseek2",
         .layers = 61,
         .dim = 7168,
         .ff = 2048,
         .experts = 256,
         .top_k = 8,
         .vocab = 129280,
         .heads = 128,
         .shared_ff = 2048,
         .dense_ff = 18432,
         .dense_layers = 3,
         .q_lora = 1536,
         .kv_lora = 512,
         .rope_dim = 64,
         .nope_dim = 128,
         .v_dim = 128,
         .v3_routing = true,
         .yarn = true};
  } else if (name == "qwen3-30b-a3b") {
    o = {.arch = "qwen3moe",
         .layers = 48,
         .dim = 2048,
         .ff = 768,
         .experts = 128,
         .top_k = 8,
         .vocab = 151936,
         .heads = 32,
         .kv_heads = 4,
         .head_dim = 128,
         .rope_theta = 1e6f};
  } else if (name == "gpt-oss-20b") {
    o = {.arch = "gpt-oss",
         .layers = 24,
         .dim = 2880,
         .ff = 2880,
         .experts = 32,
         .top_k = 4,
         .vocab = 201088,
         .heads = 64,
         .kv_heads = 8,
         .head_dim = 64};
  } else if (name == "glm-4.5-air") {
    o = {.arch = "glm4moe",
         .layers = 46,
         .dim = 4096,
         .ff = 1408,
         .experts = 128,
         .top_k = 8,
         .vocab = 151552,
         .heads = 96,
         .kv_heads = 8,
         .head_dim = 128,
         .shared_ff = 1408,
         .dense_ff = 10944,
         .dense_layers = 1,
         .rope_theta = 1e6f};
  } else if (name == "granite-3.0-1b-a400m") {
    o = {.arch = "granitemoe",
         .layers = 24,
         .dim = 1024,
         .ff = 512,
         .experts = 32,
         .top_k = 8,
         .vocab = 49155,
         .heads = 16,
         .kv_heads = 8};
  } else if (name == "olmoe-1b-7b") {
    o = {.arch = "olmoe",
         .layers = 16,
         .dim = 2048,
         .ff = 1024,
         .experts = 64,
         .top_k = 8,
         .vocab = 50304,
         .heads = 16,
         .kv_heads = 16};
  } else if (name == "mixtral-8x7b") {
    o = {.arch = "mixtral",
         .layers = 32,
         .dim = 4096,
         .ff = 14336,
         .experts = 8,
         .top_k = 2,
         .vocab = 32000,
         .heads = 32,
         .kv_heads = 8,
         .rope_theta = 1e6f};
  } else {
    std::string known;
    for (const auto& n : synth_preset_names()) known += (known.empty() ? "" : ", ") + n;
    fail("synth: unknown --preset '{}' (known: {})", name, known);
  }
  return o;
}

void synth_model(const SynthOptions& o, const std::string& out_path) {
  const bool mla = o.arch == "deepseek2";
  const int heads = o.heads > 0 ? o.heads : std::max(1, o.dim / 64);
  const int kv_heads = mla ? heads : o.kv_heads > 0 ? o.kv_heads : std::max(1, heads / 4);
  auto positive = [](const char* flag, int v) {
    if (v <= 0) fail("synth: {} must be positive, found {}", flag, v);
  };
  positive("--layers", o.layers);
  positive("--dim", o.dim);
  positive("--ff", o.ff);
  positive("--experts", o.experts);
  positive("--top-k", o.top_k);
  if (o.top_k > o.experts) fail("synth: --top-k {} exceeds --experts {}", o.top_k, o.experts);
  if (o.head_dim == 0 && o.dim % heads != 0)
    fail("synth: --dim {} is not a multiple of --heads {}", o.dim, heads);
  if (heads % kv_heads != 0)
    fail("synth: --heads {} is not a multiple of --kv-heads {}", heads, kv_heads);
  const int head_dim = mla ? o.nope_dim + o.rope_dim : o.head_dim > 0 ? o.head_dim : o.dim / heads;
  if (head_dim % 2 != 0) fail("synth: head dimension {} must be even", head_dim);
  const int64_t block = dtype_traits(o.type).block_size;
  if (o.dim % block != 0 || o.ff % block != 0) {
    fail("synth: --dim {} and --ff {} must be multiples of the {} block size {}", o.dim, o.ff,
         dtype_name(o.type), block);
  }
  std::unique_ptr<format::GgufFile> vocab_source;
  int vocab = o.vocab;
  if (!o.tokenizer_from.empty()) {
    vocab_source = std::make_unique<format::GgufFile>(o.tokenizer_from);
    vocab = static_cast<int>(vocab_source->get_array("tokenizer.ggml.tokens").items.size());
  }
  if (vocab_source == nullptr && o.vocab < 259 + 1)
    fail("synth: --vocab must be at least 260 (3 control tokens + 256 bytes + 1), found {}",
         o.vocab);
  const model::ModelConfig c =
      model::config_from_hf_json(family_config(o, heads, kv_heads, head_dim, vocab), "synth");
  std::unique_ptr<SynthRouting> routing;
  if (!o.routing_from.empty()) {
    if (!vocab_source)
      fail(
          "synth: --routing-from needs --tokenizer-from (the traced model, whose token ids the "
          "trace holds)");
    if (c.router.score != model::ScoreFunc::Softmax || c.router.softmax_over_topk ||
        c.router.group != model::GroupSelect::None || c.has_dense_layers()) {
      fail(
          "synth: --routing-from imitates softmax routers over every layer; --arch {} routes "
          "otherwise",
          o.arch);
    }
    const offload::RoutingTrace t = offload::read_trace(o.routing_from);
    if (o.experts % t.n_expert != 0)
      fail(
          "synth: the trace {} has {} experts per layer; --experts must be a multiple of that "
          "(each traced expert split into copies), found {}",
          o.routing_from, t.n_expert, o.experts);
    RoutingLayerMap layer_map = RoutingLayerMap::kStretch;
    if (o.routing_layers == "cycle") {
      layer_map = RoutingLayerMap::kCycle;
    } else if (o.routing_layers != "stretch") {
      fail("synth: --routing-layers must be stretch or cycle, found '{}'", o.routing_layers);
    }
    routing = std::make_unique<SynthRouting>(
        plan_routing(t, vocab, o.experts / t.n_expert, layer_map, o.routing_noise, o.seed));
    if (routing->n_features() >= o.dim)
      fail("synth: --dim {} must exceed the {} routing features", o.dim, routing->n_features());
  }

  format::GgufWriter g;
  model::set_config_metadata(g, c, "mcmoe-synth", gguf_file_type(o.type));
  if (vocab_source) {
    for (const auto& [key, value] : vocab_source->metadata()) {
      if (key.starts_with("tokenizer.")) g.set(key, value);
    }
  } else {
    write_filler_vocab(g, o.vocab);
  }

  const uint64_t seed = o.seed;
  // Uniform weights with variance 1/fan_in keep activations of unit scale through layers.
  // fix(row, values) adjusts a row after drawing it (routing features; see synth_routing.h).
  using RowFix = std::function<void(int64_t row_index, float* row, int64_t cols)>;
  enum class Fill { kMatrix, kOnes, kSmall, kUnit, kPositive };
  auto add = [&](const std::string& name, DType type, std::vector<int64_t> shape, Fill fill,
                 RowFix fix = nullptr) {
    g.add_tensor(name, type, shape, [name, type, shape, seed, fill, fix](uint8_t* dst, size_t) {
      Rng rng{hash_name(name, seed)};
      const int64_t cols = shape.back();
      int64_t rows = 1;
      for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
      const float a = std::sqrt(3.f / static_cast<float>(cols));
      std::vector<float> row(static_cast<size_t>(cols));
      const size_t rb = row_bytes(type, cols);
      for (int64_t r = 0; r < rows; ++r) {
        for (auto& x : row) {
          switch (fill) {
            case Fill::kMatrix:
              x = a * rng.uniform();
              break;
            case Fill::kOnes:
              x = 1.f;
              break;
            case Fill::kSmall:
              x = 0.1f * rng.uniform();
              break;
            case Fill::kUnit:
              x = rng.uniform();
              break;
            case Fill::kPositive:
              x = 0.125f * (rng.uniform() + 1.f);
              break;
          }
        }
        if (fix) fix(r, row.data(), cols);
        quant::quantize_row(type, row.data(), dst + r * rb, cols);
      }
    });
  };
  const int64_t d = o.dim;
  const SynthRouting* rt = routing.get();
  const int nf = rt ? rt->n_features() : 0;
  // The embedding carries each token's routing features in its first nf coordinates.
  RowFix embed_fix = rt ? RowFix([rt, nf](int64_t v, float* row, int64_t) {
    std::copy_n(rt->token_features.data() + v * nf, nf, row);
  })
                        : nullptr;
  // Layers write into the feature block only at `noise` strength: rows [0, nf) of every
  // matrix that adds to the residual stream (rows % d of a stacked expert tensor).
  auto scale_feature_rows = [rt, nf, d](float scale) {
    return rt ? RowFix([nf, d, scale](int64_t r, float* row, int64_t cols) {
      if (r % d < nf) {
        for (int64_t col = 0; col < cols; ++col) row[col] *= scale;
      }
    })
              : nullptr;
  };
  const RowFix residual_fix = scale_feature_rows(rt ? rt->noise : 1.f);
  // Attention's values never read the features (nor have a bias). The features have a large
  // common part (the experts every token likes or shuns), so values read from them would make
  // attention add nearly the same vector to every token, and summed over many layers that
  // bias sends every token to the same few experts (a 48-layer copy of a 64-expert top-8
  // model put 96% of its picks on a quarter of its experts; the traced model 33-61%). Values
  // from the rest of the residual have no common part, so attention's noise only blurs each
  // token's choice, as context does, and keeps the next layer's router from being predicted
  // exactly.
  const RowFix value_fix = rt ? RowFix([nf](int64_t, float* row, int64_t cols) {
    std::fill_n(row, std::min<int64_t>(nf, cols), 0.f);
  })
                              : nullptr;
  const RowFix zero_fix =
      rt ? RowFix([](int64_t, float* row, int64_t cols) { std::fill_n(row, cols, 0.f); }) : nullptr;
  // Matrices take the requested type when their rows fit its blocks, else F16; routers F32.
  auto matrix_type = [&](int64_t cols) { return cols % block == 0 ? o.type : DType::F16; };
  model::ModelWeights w;
  w.layers.resize(c.n_layer);
  model::LayerExperts experts(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) experts[l].resize(c.experts(l));
  using K = model::TensorKind;
  model::for_each_tensor(c, w, experts, [&](const model::TensorSlot& s) {
    if (s.role == model::TensorRole::RoutedExpert) {
      if (s.expert != 0) return;  // stacked: all experts of the layer at once
      std::vector<int64_t> shape{c.experts(s.layer)};
      shape.insert(shape.end(), s.shape.begin(), s.shape.end());
      const std::string name = model::stacked_expert_name(s.kind, s.layer);
      if (!s.matrix) return add(name, DType::F32, shape, Fill::kSmall);
      return add(name, matrix_type(s.shape.back()), shape, Fill::kMatrix,
                 s.kind == K::ExpDown ? residual_fix : nullptr);
    }
    if (!s.matrix) {
      const Fill fill = s.role == model::TensorRole::Norm ? Fill::kOnes
                        : s.kind == K::AttnSinks          ? Fill::kUnit
                        : s.kind == K::ChoiceBias         ? Fill::kPositive
                                                          : Fill::kSmall;
      // llama.cpp declares the shared-expert gate as a vector; it is never one here.
      return add(s.name, DType::F32, s.shape, fill, s.kind == K::AttnVBias ? zero_fix : nullptr);
    }
    switch (s.kind) {
      case K::TokenEmbd:
        return add(s.name, o.type, s.shape, Fill::kMatrix, embed_fix);
      case K::Router: {
        // The router reads only its traced layer's features.
        const int l = s.layer;
        RowFix router_fix =
            rt ? RowFix([rt, l, layers = o.layers](int64_t e, float* row, int64_t cols) {
              rt->router_row(l, layers, static_cast<int>(e), row, cols);
            })
               : nullptr;
        return add(s.name, DType::F32, s.shape, Fill::kMatrix, router_fix);
      }
      case K::ShexpRouter:
        return add(s.name, DType::F32, {c.n_embd}, Fill::kMatrix);
      case K::AttnV:
      case K::AttnKvAMqa:
        return add(s.name, matrix_type(s.shape.back()), s.shape, Fill::kMatrix, value_fix);
      case K::AttnOut:
      case K::DenseDown:
      case K::ShexpDown:
        return add(s.name, matrix_type(s.shape.back()), s.shape, Fill::kMatrix, residual_fix);
      default:
        return add(s.name, matrix_type(s.shape.back()), s.shape, Fill::kMatrix);
    }
  });
  g.write(out_path, o.progress);
}

}  // namespace mcmoe::api
