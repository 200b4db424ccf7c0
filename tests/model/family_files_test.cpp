// The tensor inventory is the one list of a model's tensors: for every family, a converted
// GGUF holds exactly the inventory's tensors and a checkpoint nothing the inventory misses.
// A missing or wrong key or tensor in a new family's files fails with exit code 1 and a
// message that names it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "api/convert.h"
#include "common/test_util.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "model/inventory.h"
#include "model/model.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;

const char* const kFamilies[] = {"qwen3moe_b",    "olmoe_b",       "deepseek_v2_a",
                                 "deepseek_v2_b", "deepseek_v3_b", "glm4moe_b",
                                 "gpt_oss_b",     "granitemoe_a",  "granitemoe_b"};

std::string fixture(const test::TempDir& dir, const std::string& name, const std::string& as = "") {
  const fs::path src = fs::path(MCMOE_SOURCE_DIR) / "tests/data/families";
  const fs::path dst = dir.dir() / (as.empty() ? name : as);
  fs::create_directories(dst);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(src / name / f, dst / f, fs::copy_options::overwrite_existing);
  fs::copy_file(src / "tokenizer.model", dst / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  return dst.string();
}

TEST(FamilyFiles, ConvertedGgufHoldsExactlyTheInventory) {
  test::TempDir dir;
  for (const char* name : kFamilies) {
    const std::string hf = fixture(dir, name);
    const std::string gguf = dir.path(std::string(name) + ".gguf");
    api::convert_hf_to_gguf(hf, gguf, {.type = DType::F32});
    auto m = model::Model::load(gguf);
    std::set<std::string> listed, in_file;
    model::for_each_tensor(m->config(), m->weights(), m->stored_experts(),
                           [&](const model::TensorSlot& s) {
                             listed.insert(s.role == model::TensorRole::RoutedExpert
                                               ? model::stacked_expert_name(s.kind, s.layer)
                                               : s.name);
                           });
    for (const auto& t : m->file_tensors()) in_file.insert(t.name);
    EXPECT_EQ(listed, in_file) << name;
    // Every tensor of the checkpoint was read (the loaders walk the same inventory).
    auto h = model::Model::load(hf);
    EXPECT_EQ(h->file_tensors().size(), format::SafetensorsSet(hf).names().size()) << name;
  }
}

TEST(FamilyFiles, EveryCheckpointTensorIsUsed) {
  // A tensor the inventory does not know would be silently ignored: convert writes exactly
  // the inventory, so the checkpoint's tensor count must equal what the GGUF stores once
  // stacked experts and fused gpt-oss / Granite tensors are accounted for.
  test::TempDir dir;
  for (const char* name : kFamilies) {
    const std::string hf = fixture(dir, name);
    auto m = model::Model::load(hf);
    std::set<std::string> used;
    // The loader reads through views of the checkpoint's own tensors (or copies of them);
    // count the checkpoint tensors whose bytes some slot's view comes from.
    std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges;
    for (const auto& t : m->file_tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.view.data);
      ranges.emplace_back(p, p + t.view.nbytes);
    }
    const auto& ckpt = m->file_tensors();
    std::vector<bool> touched(ckpt.size(), false);
    model::for_each_tensor(m->config(), m->weights(), m->stored_experts(),
                           [&](const model::TensorSlot& s) {
                             const auto* p = static_cast<const uint8_t*>(s.view->data);
                             for (size_t i = 0; i < ckpt.size(); ++i) {
                               if (p >= ranges[i].first && p < ranges[i].second) touched[i] = true;
                             }
                           });
    const std::string cfg = (fs::path(hf) / "config.json").string();
    const auto j = nlohmann::json::parse(std::ifstream(cfg));
    for (size_t i = 0; i < ckpt.size(); ++i) {
      // Vectors are converted to owned f32 copies and gpt-oss's fused experts are copied
      // transposed, so only matrices used in place can be traced back by address.
      const bool traced = ckpt[i].view.shape.size() >= 2 && j["model_type"] != "gpt_oss";
      if (traced) {
        EXPECT_TRUE(touched[i]) << name << ": checkpoint tensor " << ckpt[i].name
                                << " is never used";
      }
    }
  }
}

// config.json with one key changed (null: removed).
void edit_config(const std::string& dir, const std::string& key, const nlohmann::json& value) {
  const std::string path = (fs::path(dir) / "config.json").string();
  auto j = nlohmann::json::parse(std::ifstream(path));
  if (value.is_null()) {
    j.erase(key);
  } else {
    j[key] = value;
  }
  std::ofstream(path) << j.dump(2);
}

// model.safetensors without one tensor.
void drop_tensor(const std::string& dir, const std::string& name) {
  const std::string path = (fs::path(dir) / "model.safetensors").string();
  std::map<std::string, TensorView> kept;
  {
    format::SafetensorsFile f(path);
    for (const auto& [n, v] : f.tensors()) {
      if (n != name) kept[n] = v;
    }
    format::write_safetensors(path + ".new", kept);
  }
  fs::rename(path + ".new", path);
}

struct BadCheckpoint {
  const char* fixture;
  const char* key;       // config key to change, or "" for a tensor
  nlohmann::json value;  // null: remove the key
  const char* tensor;    // tensor to remove, or ""
  std::vector<std::string> message;
};

TEST(FamilyFiles, BadCheckpointsFailNamingTheKeyOrTensor) {
  const BadCheckpoint cases[] = {
      {"deepseek_v2_a", "kv_lora_rank", nullptr, "", {"config.json", "kv_lora_rank"}},
      {"deepseek_v2_a", "qk_rope_head_dim", "eight", "", {"qk_rope_head_dim", "wrong type"}},
      {"deepseek_v2_a", "topk_method", "best_of_three", "", {"topk_method", "best_of_three"}},
      {"deepseek_v3_b", "scoring_func", "relu", "", {"scoring_func", "relu"}},
      {"deepseek_v3_b", "n_group", 5, "", {"8 experts", "5 routing groups"}},
      {"deepseek_v2_a", "num_key_value_heads", 1, "", {"num_key_value_heads", "MLA"}},
      {"deepseek_v2_a",
       "",
       nullptr,
       "model.layers.1.self_attn.kv_b_proj.weight",
       {"model.layers.1.self_attn.kv_b_proj.weight"}},
      {"deepseek_v3_b",
       "",
       nullptr,
       "model.layers.2.mlp.gate.e_score_correction_bias",
       {"e_score_correction_bias"}},
      {"glm4moe_b", "n_routed_experts", nullptr, "", {"n_routed_experts"}},
      {"glm4moe_b", "partial_rotary_factor", 3.0, "", {"rotary dimensions"}},
      {"glm4moe_b",
       "",
       nullptr,
       "model.layers.0.mlp.down_proj.weight",
       {"model.layers.0.mlp.down_proj.weight"}},
      {"gpt_oss_b",
       "layer_types",
       nlohmann::json::array({"sliding_attention"}),
       "",
       {"layer_types", "1 entries"}},
      {"gpt_oss_b", "num_local_experts", nullptr, "", {"num_local_experts"}},
      {"gpt_oss_b",
       "",
       nullptr,
       "model.layers.1.self_attn.sinks",
       {"model.layers.1.self_attn.sinks"}},
      {"gpt_oss_b",
       "",
       nullptr,
       "model.layers.0.mlp.experts.gate_up_proj_bias",
       {"gate_up_proj_bias"}},
      {"gpt_oss_b",
       "quantization_config",
       nlohmann::json{{"quant_method", "gptq"}},
       "",
       {"'gptq'", "mxfp4", "float"}},
      {"granitemoe_b",
       "",
       nullptr,
       "model.layers.2.block_sparse_moe.input_linear.weight",
       {"input_linear"}},
      {"granitemoe_b", "intermediate_size", 17, "", {"input_linear.weight", "shape"}},
      {"qwen3moe_b",
       "",
       nullptr,
       "model.layers.1.self_attn.k_norm.weight",
       {"model.layers.1.self_attn.k_norm.weight"}},
      {"olmoe_b", "num_experts_per_tok", 9, "", {"experts per token 9", "4"}},
  };
  test::TempDir dir;
  int i = 0;
  for (const auto& c : cases) {
    const std::string hf = fixture(dir, c.fixture, "bad" + std::to_string(i++));
    if (*c.key) edit_config(hf, c.key, c.value);
    if (*c.tensor) drop_tensor(hf, c.tensor);
    std::vector<std::string> fragments = c.message;
    test::expect_clean_error(test::run_cli("inspect " + test::quote(hf)), fragments);
  }
}

// A GGUF rewritten without one metadata key or one tensor.
void rewrite_gguf(const std::string& in, const std::string& out, const std::string& drop_key,
                  const std::string& drop_tensor) {
  format::GgufFile f(in);
  format::GgufWriter w;
  for (const auto& [k, v] : f.metadata()) {
    if (k != drop_key) w.set(k, v);
  }
  for (const auto& t : f.tensors()) {
    if (t.name == drop_tensor) continue;
    const TensorView v = f.view(t);
    w.add_tensor(t.name, t.type, t.shape,
                 [v](uint8_t* dst, size_t n) { std::memcpy(dst, v.data, n); });
  }
  w.write(out);
}

TEST(FamilyFiles, BadGgufsFailNamingTheKeyOrTensor) {
  struct Case {
    const char* fixture;
    const char* key;
    const char* tensor;
    std::vector<std::string> message;
  };
  const Case cases[] = {
      {"deepseek_v2_b",
       "deepseek2.attention.kv_lora_rank",
       "",
       {"deepseek2.attention.kv_lora_rank"}},
      {"deepseek_v2_b",
       "deepseek2.expert_feed_forward_length",
       "",
       {"deepseek2.expert_feed_forward_length"}},
      {"deepseek_v2_b", "", "blk.1.attn_kv_a_mqa.weight", {"blk.1.attn_kv_a_mqa.weight"}},
      {"deepseek_v3_b", "", "blk.3.exp_probs_b.bias", {"blk.3.exp_probs_b.bias"}},
      {"glm4moe_b", "", "blk.2.post_attention_norm.weight", {"blk.2.post_attention_norm.weight"}},
      {"glm4moe_b",
       "glm4moe.expert_feed_forward_length",
       "",
       {"glm4moe.expert_feed_forward_length"}},
      {"gpt_oss_b", "gpt-oss.attention.sliding_window", "", {"gpt-oss.attention.sliding_window"}},
      {"gpt_oss_b", "", "blk.0.ffn_down_exps.bias", {"blk.0.ffn_down_exps.bias"}},
      {"gpt_oss_b", "", "blk.1.attn_sinks.weight", {"blk.1.attn_sinks.weight"}},
      {"granitemoe_b", "granitemoe.logit_scale", "", {"granitemoe.logit_scale"}},
      {"qwen3moe_b", "", "blk.0.attn_q_norm.weight", {"blk.0.attn_q_norm.weight"}},
  };
  test::TempDir dir;
  for (const auto& c : cases) {
    const std::string hf = fixture(dir, c.fixture);
    const std::string good = dir.path(std::string(c.fixture) + ".gguf"), bad = dir.path("bad.gguf");
    if (!fs::exists(good)) api::convert_hf_to_gguf(hf, good, {.type = DType::F32});
    rewrite_gguf(good, bad, c.key, c.tensor);
    test::expect_clean_error(test::run_cli("inspect " + test::quote(bad)), c.message);
  }
}

}  // namespace
}  // namespace mcmoe
