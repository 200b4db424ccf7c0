// Multi-head latent attention: the absorbed form (attention over the cached latents) and the
// naive form (latents expanded to per-head K and V) agree; the cache holds kv_lora_rank +
// qk_rope values per token and layer; llama.cpp's newer layout with kv_b split into
// attn_k_b / attn_v_b loads and computes the same model.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "model/model_writer.h"
#include "model/session.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;

// A Hugging Face directory from a family fixture (tests/data/families).
std::string fixture(const test::TempDir& dir, const std::string& name) {
  const fs::path src = fs::path(MCMOE_SOURCE_DIR) / "tests/data/families";
  const fs::path dst = dir.dir() / name;
  fs::create_directories(dst);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(src / name / f, dst / f);
  fs::copy_file(src / "tokenizer.model", dst / "tokenizer.model");
  return dst.string();
}

std::vector<int32_t> ids(int n) {
  std::vector<int32_t> v{1};
  for (int i = 1; i < n; ++i) v.push_back(3 + (i * 131) % 380);
  return v;
}

std::vector<float> logits(model::Model& m, model::SessionOptions::MlaMode mode, bool one_at_a_time,
                          int n = 40) {
  model::Session s(m, {.n_ctx = 128, .n_threads = 2, .mla_mode = mode});
  const auto tokens = ids(n);
  if (!one_at_a_time) {
    const auto l = s.eval(tokens, true);
    return {l.begin(), l.end()};
  }
  std::vector<float> out;
  for (int32_t t : tokens) {
    const auto l = s.eval(std::span<const int32_t>(&t, 1), false);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

TEST(Mla, AbsorbedAndNaiveAgree) {
  test::TempDir dir;
  for (const char* name : {"deepseek_v2_a", "deepseek_v2_b", "deepseek_v3_a", "deepseek_v3_b"}) {
    auto m = model::Model::load(fixture(dir, name));
    using Mode = model::SessionOptions::MlaMode;
    const auto naive = logits(*m, Mode::kNaive, false);
    for (const bool steps : {false, true}) {
      const double err = test::relative_max_error(logits(*m, Mode::kAbsorbed, steps), naive);
      EXPECT_LT(err, 1e-4) << name << (steps ? " decoding one token at a time" : " in one batch");
      std::printf("[mla] %s absorbed%s vs naive: relative max error %.3g\n", name, steps ? " (one token at a time)" : "", err);
    }
    EXPECT_LT(test::relative_max_error(logits(*m, Mode::kNaive, true), naive), 1e-4) << name;
  }
}

TEST(Mla, CacheHoldsTheLatentOnly) {
  test::TempDir dir;
  auto m = model::Model::load(fixture(dir, "deepseek_v3_b"));
  const model::ModelConfig& c = m->config();
  model::Session s(*m, {.n_ctx = 64, .n_threads = 1});
  EXPECT_EQ(s.kv_cache_bytes_per_token(),
            static_cast<size_t>(c.mla.kv_lora_rank + c.mla.qk_rope) * c.n_layer * sizeof(float));
  // Against the per-head K and V a plain multi-head cache would hold.
  EXPECT_LT(
      s.kv_cache_bytes_per_token(),
      static_cast<size_t>(c.n_head) * (c.mla.qk_dim() + c.mla.v_dim) * c.n_layer * sizeof(float));
}

// llama.cpp's converters since 2025 split kv_b per head into attn_k_b [n_head, kv_lora,
// qk_nope] (W_UK transposed) and attn_v_b [n_head, v_dim, kv_lora], write key/value lengths
// of the shared latent head and the per-head ones as key_length_mla / value_length_mla.
TEST(Mla, SplitKvBLayoutLoadsAndMatches) {
  test::TempDir dir;
  auto m = model::Model::load(fixture(dir, "deepseek_v2_b"));
  const model::ModelConfig& c = m->config();
  model::ModelConfig split = c;
  split.mla.split_kv_b = true;
  model::ModelTensors t;
  t.config = &split;
  t.weights = m->weights();
  t.experts = m->stored_experts();
  const int64_t H = c.n_head, nope = c.mla.qk_nope, v = c.mla.v_dim, lora = c.mla.kv_lora_rank;
  std::vector<std::vector<float>> v_b(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    const TensorView& kv_b = m->weights().layers[l].wkv_b;
    ASSERT_EQ(kv_b.type, DType::F32);
    v_b[l].resize(H * v * lora);
    for (int64_t h = 0; h < H; ++h) {
      std::memcpy(v_b[l].data() + h * v * lora, kv_b.row(h * (nope + v) + nope),
                  v * lora * sizeof(float));
    }
    TensorView& wv = t.weights.layers[l].wv_b;
    wv.type = DType::F32;
    wv.shape = {H, v, lora};
    wv.data = v_b[l].data();
    wv.nbytes = v_b[l].size() * sizeof(float);
    ASSERT_EQ(t.weights.layers[l].wk_b.shape, (std::vector<int64_t>{H, lora, nope}));
  }
  model::write_model_gguf(*m, t, "split", 0, {}, dir.path("split.gguf"));
  auto g = model::Model::load(dir.path("split.gguf"));
  EXPECT_TRUE(g->config().mla.split_kv_b);
  EXPECT_EQ(g->config().head_dim, c.head_dim);
  EXPECT_EQ(g->config().n_head_kv, c.n_head);
  using Mode = model::SessionOptions::MlaMode;
  EXPECT_LT(
      test::relative_max_error(logits(*g, Mode::kAuto, false), logits(*m, Mode::kNaive, false)),
      1e-4);
  // Only the absorbed form exists without kv_b whole.
  try {
    model::Session s(*g, {.n_ctx = 16, .mla_mode = Mode::kNaive});
    FAIL() << "the naive form was accepted without kv_b";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attn_k_b"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcmoe
