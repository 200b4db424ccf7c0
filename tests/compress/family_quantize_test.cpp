// calibrate → quantize on every family with more than attention + routed experts
// (compress/family_models.h): routed experts get the bit plan, attention --attn-bits, the
// router --router-bits, shared experts and dense MLPs --shared-bits, vectors stay as stored;
// the result runs, and at 8 bits everywhere stays close to the original. MLA's split
// attn_k_b / attn_v_b (no single input) are rounded to nearest. A model without an MoE
// layer is refused by every expert pipeline.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "compress/dense.h"
#include "compress/family_models.h"
#include "compress/quantize_model.h"
#include "core/dtype.h"
#include "model/model_writer.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

class FamilyQuantize : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    models_ = new std::vector<test::FamilyFile>(test::write_family_models(*dir_));
    test::write_word_salad(text(), 2500);
    for (const test::FamilyFile& f : *models_) {
      const auto r = run_cli("calibrate -m " + quote(f.path) + " -f " + quote(text()) +
                             " --samples 4 --seq 64 -o " + quote(stats(f)));
      ASSERT_EQ(r.exit_code, 0) << f.family << ": " << r.err;
    }
  }
  static void TearDownTestSuite() {
    delete models_;
    delete dir_;
  }
  static std::string text() { return dir_->path("text.txt"); }
  static std::string stats(const test::FamilyFile& f) { return dir_->path(f.family + ".json"); }
  static test::CliResult quantize(const std::string& model, const std::string& stats_path,
                                  const std::string& flags, const std::string& out) {
    return run_cli("quantize -m " + quote(model) + " --stats " + quote(stats_path) + " " + flags +
                   " -o " + quote(out));
  }
  static test::TempDir* dir_;
  static std::vector<test::FamilyFile>* models_;
};
test::TempDir* FamilyQuantize::dir_ = nullptr;
std::vector<test::FamilyFile>* FamilyQuantize::models_ = nullptr;

// The code width of a stored matrix: MQ types by their bits, Q8_0 as 8, anything else 0.
int stored_bits(DType t) {
  int bits = 0;
  if (mq_params(t, &bits, nullptr)) return bits;
  return t == DType::Q8_0 ? 8 : 0;
}

TEST_F(FamilyQuantize, RoutedExpertsGetThePlanTheRestTheirRoleWidth) {
  for (const test::FamilyFile& f : *models_) {
    SCOPED_TRACE(f.family);
    const std::string out = dir_->path(f.family + "-pmq.gguf");
    const auto q =
        quantize(f.path, stats(f), "--bits 2.5 --attn-bits 4 --router-bits 4 --shared-bits 8", out);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    EXPECT_NE(q.out.find("routed expert  plan 2.5"), std::string::npos) << q.out;
    auto m = model::Model::load(out);
    const model::ModelConfig& c = m->config();
    // The plan as written, each layer's experts in turn (dense layers have none).
    const format::GgufArray& plan = m->gguf()->get_array(compress::kPlanKey);
    std::vector<int> offset(c.n_layer + 1, 0);
    for (int l = 0; l < c.n_layer; ++l) offset[l + 1] = offset[l] + c.experts(l);
    ASSERT_EQ(plan.items.size(), static_cast<size_t>(offset[c.n_layer]));
    // Vectors of the original by name (expert biases in their per-expert names).
    auto src = model::Model::load(f.path);
    std::map<std::string, std::vector<float>> vectors;
    model::for_each_tensor(c, src->weights(), src->stored_experts(),
                           [&](const model::TensorSlot& s) {
                             if (!s.matrix) vectors[s.name] = compress::to_vector(*s.view);
                           });
    std::map<model::TensorRole, int> matrices;
    model::for_each_tensor(c, m->weights(), m->stored_experts(), [&](const model::TensorSlot& s) {
      if (s.layer < 0) return;
      if (!s.matrix) {  // norms, biases, sinks: as stored
        EXPECT_TRUE(compress::to_vector(*s.view) == vectors.at(s.name)) << s.name;
        return;
      }
      ++matrices[s.role];
      const int bits = stored_bits(s.view->type);
      switch (s.role) {
        case model::TensorRole::Attention:
        case model::TensorRole::Router:
          EXPECT_EQ(bits, 4) << s.name;
          break;
        case model::TensorRole::SharedExpert:
        case model::TensorRole::DenseMlp:
          EXPECT_EQ(s.view->type, DType::Q8_0) << s.name;
          break;
        case model::TensorRole::RoutedExpert: {
          const uint64_t want = std::get<uint64_t>(plan.items[offset[s.layer] + s.expert].v);
          EXPECT_EQ(bits, static_cast<int>(want)) << s.name;
          break;
        }
        default:
          ADD_FAILURE() << s.name << ": unexpected role " << model::role_name(s.role);
      }
    });
    const bool has_shared = f.family != "gpt-oss";
    EXPECT_EQ(matrices[model::TensorRole::SharedExpert] > 0, has_shared);
    EXPECT_EQ(matrices[model::TensorRole::DenseMlp] > 0,
              has_shared);  // the same two families have dense layers
    if (has_shared) {
      EXPECT_NE(q.out.find("shared expert  8 bits"), std::string::npos) << q.out;
      EXPECT_NE(q.out.find("dense MLP      8 bits"), std::string::npos) << q.out;
    }
    const auto run =
        run_cli("run -m " + quote(out) + " -p " + quote("the king") + " -n 6 --temp 0");
    EXPECT_EQ(run.exit_code, 0) << run.err;
    const auto ppl =
        run_cli("ppl -m " + quote(out) + " -f " + quote(text()) + " --ctx 64 --max-tokens 200");
    ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
    const size_t at = ppl.out.find("ppl ");
    ASSERT_NE(at, std::string::npos) << ppl.out;
    EXPECT_TRUE(std::isfinite(std::stod(ppl.out.substr(at + 4)))) << ppl.out;
  }
}

// How far 8-bit weights everywhere move the logits from the original's, measured against how
// far the engine's own round-to-nearest Q8_0 conversion moves them.
void expect_as_close_as_q8_0(const std::string& original, const std::string& quantized,
                             const std::string& scratch) {
  const auto conv = run_cli("convert " + quote(original) + " --type q8_0 -o " + quote(scratch));
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  const std::vector<float> want = test::family_logits(original);
  const int64_t n_vocab = model::Model::load(original)->config().n_vocab;
  const double got = test::median_position_error(test::family_logits(quantized), want, n_vocab);
  const double q8_0 = test::median_position_error(test::family_logits(scratch), want, n_vocab);
  // The random synthetic models amplify weight noise: Q8_0's ~0.4% per weight leaves 2-5%
  // of the logits' range at a typical position. GPTQ at 8 bits lands within a factor of 2 of
  // it (it optimises for the calibration text, not these tokens); a lost bias, a wrong
  // activation or a matrix quantized against the wrong input lands far outside.
  EXPECT_GT(q8_0, 0);
  EXPECT_LT(got, 2 * q8_0 + 0.005) << "median error " << got << " vs Q8_0 conversion " << q8_0;
}

TEST_F(FamilyQuantize, EightBitsEverywhereStaysClose) {
  for (const test::FamilyFile& f : *models_) {
    SCOPED_TRACE(f.family);
    const std::string out = dir_->path(f.family + "-q8.gguf");
    const auto q =
        quantize(f.path, stats(f),
                 "--alloc uniform --bits 8 --attn-bits 8 --router-bits 8 --shared-bits 8", out);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    expect_as_close_as_q8_0(f.path, out, dir_->path(f.family + "-convert-q8_0.gguf"));
  }
}

// DeepSeek's split kv_b, as llama.cpp's converters write it: attn_k_b [n_head, kv_lora,
// qk_nope] and attn_v_b [n_head, v_dim, kv_lora], from the model's whole kv_b.
std::string write_split_kv_b(const std::string& path, const std::string& out) {
  auto m = model::Model::load(path);
  const model::ModelConfig& c = m->config();
  model::ModelConfig split = c;
  split.mla.split_kv_b = true;
  model::ModelTensors t;
  t.config = &split;
  t.weights = m->weights();
  t.experts = m->stored_experts();
  const int64_t H = c.n_head, nope = c.mla.qk_nope, v = c.mla.v_dim, lora = c.mla.kv_lora_rank;
  std::vector<std::vector<uint8_t>> v_b(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) {
    const TensorView& kv_b = m->weights().layers[l].wkv_b;
    const size_t row = kv_b.row_stride();
    v_b[l].resize(static_cast<size_t>(H * v) * row);
    for (int64_t h = 0; h < H; ++h)
      std::memcpy(v_b[l].data() + h * v * row, kv_b.row(h * (nope + v) + nope), v * row);
    TensorView& wv = t.weights.layers[l].wv_b;
    wv = {.type = kv_b.type, .shape = {H, v, lora}, .data = v_b[l].data(), .nbytes = v_b[l].size()};
  }
  model::write_model_gguf(*m, t, "split", 1, {}, out);
  return out;
}

TEST_F(FamilyQuantize, SplitKvBIsRoundedToNearestAndChecked) {
  const test::FamilyFile& ds = models_->at(0);
  ASSERT_EQ(ds.family, "deepseek2");
  const std::string split = write_split_kv_b(ds.path, dir_->path("deepseek2-split.gguf"));
  ASSERT_TRUE(model::Model::load(split)->config().mla.split_kv_b);
  // Routers are unchanged, so the unsplit model's statistics fit. attn_k_b's rows hold
  // qk_nope = 64 weights: less than one 128-weight block of the low-bit formats.
  const std::string out = dir_->path("deepseek2-split-q.gguf");
  test::expect_clean_error(
      quantize(split, stats(ds), "--bits 2.5 --attn-bits 4", out),
      {"tensor 'blk.0.attn_k_b.weight' [2, 128, 64]", "blocks of 128", "--attn-bits"});
  EXPECT_FALSE(std::filesystem::exists(out));
  // At 8 bits (Q8_0, blocks of 32) they fit, each head's matrix kept in its 3-D shape.
  const auto q8 =
      quantize(split, stats(ds),
               "--alloc uniform --bits 8 --attn-bits 8 --router-bits 8 --shared-bits 8", out);
  ASSERT_EQ(q8.exit_code, 0) << q8.err;
  {
    const format::GgufFile f(out);
    EXPECT_EQ(f.find_tensor("blk.0.attn_k_b.weight")->type, DType::Q8_0);
    EXPECT_EQ(f.find_tensor("blk.2.attn_v_b.weight")->type, DType::Q8_0);
    EXPECT_EQ(f.find_tensor("blk.2.attn_v_b.weight")->shape, (std::vector<int64_t>{2, 64, 128}));
  }
  expect_as_close_as_q8_0(split, out, dir_->path("deepseek2-split-convert.gguf"));
}

TEST_F(FamilyQuantize, ModelWithoutMoeLayerIsRefusedEverywhere) {
  api::SynthOptions o = test::deepseek2_options();
  o.layers = 2;
  o.dense_layers = 2;
  const std::string dense = dir_->path("all-dense.gguf"), out = dir_->path("refused.gguf");
  api::synth_model(o, dense);
  const std::string from = " -m " + quote(dense) + " -f " + quote(text()) + " --samples 4 ";
  test::expect_clean_error(run_cli("calibrate" + from + "--seq 64 -o " + quote(out)),
                           {"all-dense.gguf", "none of this model's 2 layers is an MoE layer"});
  test::expect_clean_error(run_cli("reduce" + from + "--seq 64 --method prune -o " + quote(out)),
                           {"none of this model's 2 layers is an MoE layer"});
  test::expect_clean_error(run_cli("lowrank" + from + "--seq 64 --rank 32 -o " + quote(out)),
                           {"none of the model's 2 layers has routed experts"});
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace mcmoe
