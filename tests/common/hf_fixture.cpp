#include "common/hf_fixture.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "format/safetensors.h"

namespace mcmoe::test {

void write_hf_fixture(const std::string& dir, const HfFixture& f) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  constexpr int kVocab = 2048;  // the tokenizer.model fixture has 2048 pieces
  const bool qwen2 = f.model_type == "qwen2_moe", qwen3 = f.model_type == "qwen3_moe",
             olmoe = f.model_type == "olmoe", dense = f.model_type == "llama";
  const int hd = f.dim / f.heads;
  nlohmann::json c = {{"model_type", f.model_type}, {"vocab_size", kVocab}, {"hidden_size", f.dim},
                      {"num_hidden_layers", f.layers}, {"num_attention_heads", f.heads},
                      {"num_key_value_heads", f.kv_heads}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
                      {"max_position_embeddings", 1024}, {"tie_word_embeddings", false}};
  if (f.model_type == "mixtral") {
    c["num_local_experts"] = f.experts;
    c["num_experts_per_tok"] = f.top_k;
    c["intermediate_size"] = f.ff;
  } else if (dense) {
    c["intermediate_size"] = f.ff;
  } else {
    c["num_experts"] = f.experts;
    c["num_experts_per_tok"] = f.top_k;
    c[olmoe ? "intermediate_size" : "moe_intermediate_size"] = f.ff;
    c["norm_topk_prob"] = qwen3;
    if (qwen2) c["shared_expert_intermediate_size"] = f.shared_ff;
  }
  std::ofstream(fs::path(dir) / "config.json") << c.dump(2);
  fs::copy_file(fs::path(MCMOE_SOURCE_DIR) / "tests/data/tiny-spm/tokenizer.model", fs::path(dir) / "tokenizer.model",
                fs::copy_options::overwrite_existing);

  std::mt19937_64 rng(f.seed);
  std::vector<std::unique_ptr<std::vector<uint16_t>>> storage;
  std::map<std::string, TensorView> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset = 0.f) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<float> nd(0.f, 1.f);
    auto buf = std::make_unique<std::vector<uint16_t>>(static_cast<size_t>(n));
    for (auto& x : *buf) x = f32_to_fp16(offset + scale * nd(rng));
    TensorView v;
    v.type = DType::F16;
    v.shape = shape;
    v.data = buf->data();
    v.nbytes = static_cast<size_t>(n) * 2;
    tensors[name] = v;
    storage.push_back(std::move(buf));
  };
  const float s = 1.f / std::sqrt(static_cast<float>(f.dim));
  add("model.embed_tokens.weight", {kVocab, f.dim}, 1.f);
  add("model.norm.weight", {f.dim}, 0.1f, 1.f);
  add("lm_head.weight", {kVocab, f.dim}, s);
  for (int l = 0; l < f.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {f.dim}, 0.1f, 1.f);
    add(p + "post_attention_layernorm.weight", {f.dim}, 0.1f, 1.f);
    // Larger q/k weights give peaked attention, so a wrong RoPE pairing shows in the logits.
    add(p + "self_attn.q_proj.weight", {f.heads * hd, f.dim}, 4 * s);
    add(p + "self_attn.k_proj.weight", {f.kv_heads * hd, f.dim}, 4 * s);
    add(p + "self_attn.v_proj.weight", {f.kv_heads * hd, f.dim}, s);
    add(p + "self_attn.o_proj.weight", {f.dim, f.heads * hd}, s);
    if (qwen2) {
      add(p + "self_attn.q_proj.bias", {f.heads * hd}, 0.1f);
      add(p + "self_attn.k_proj.bias", {f.kv_heads * hd}, 0.1f);
      add(p + "self_attn.v_proj.bias", {f.kv_heads * hd}, 0.1f);
    }
    if (qwen3) {
      add(p + "self_attn.q_norm.weight", {hd}, 0.1f, 1.f);
      add(p + "self_attn.k_norm.weight", {hd}, 0.1f, 1.f);
    }
    if (olmoe) {
      add(p + "self_attn.q_norm.weight", {f.heads * hd}, 0.1f, 1.f);
      add(p + "self_attn.k_norm.weight", {f.kv_heads * hd}, 0.1f, 1.f);
    }
    const float sf = 1.f / std::sqrt(static_cast<float>(f.ff));
    if (dense) {
      add(p + "mlp.gate_proj.weight", {f.ff, f.dim}, s);
      add(p + "mlp.up_proj.weight", {f.ff, f.dim}, s);
      add(p + "mlp.down_proj.weight", {f.dim, f.ff}, sf);
      continue;
    }
    const std::string moe = f.model_type == "mixtral" ? p + "block_sparse_moe." : p + "mlp.";
    add(moe + "gate.weight", {f.experts, f.dim}, 4 * s);
    for (int e = 0; e < f.experts; ++e) {
      const std::string ep = moe + "experts." + std::to_string(e) + ".";
      if (f.model_type == "mixtral") {
        add(ep + "w1.weight", {f.ff, f.dim}, s);
        add(ep + "w3.weight", {f.ff, f.dim}, s);
        add(ep + "w2.weight", {f.dim, f.ff}, sf);
      } else {
        add(ep + "gate_proj.weight", {f.ff, f.dim}, s);
        add(ep + "up_proj.weight", {f.ff, f.dim}, s);
        add(ep + "down_proj.weight", {f.dim, f.ff}, sf);
      }
    }
    if (qwen2) {
      const float ss = 1.f / std::sqrt(static_cast<float>(f.shared_ff));
      add(p + "mlp.shared_expert.gate_proj.weight", {f.shared_ff, f.dim}, s);
      add(p + "mlp.shared_expert.up_proj.weight", {f.shared_ff, f.dim}, s);
      add(p + "mlp.shared_expert.down_proj.weight", {f.dim, f.shared_ff}, ss);
      add(p + "mlp.shared_expert_gate.weight", {1, f.dim}, s);
    }
  }
  format::write_safetensors((fs::path(dir) / "model.safetensors").string(), tensors);
}

}  // namespace mcmoe::test
