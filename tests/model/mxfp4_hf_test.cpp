// gpt-oss as Hugging Face releases it: experts stored as MXFP4 (*_blocks / *_scales U8, the
// quantization_config {"quant_method": "mxfp4"}), everything else float. The fixture
// (tests/data/families/make_mxfp4.py) comes with a float twin whose experts hold the values
// the MXFP4 checkpoint stands for, and the PyTorch reference's logits of that twin. Checked:
// the experts load as ggml MXFP4 blocks that dequantize exactly to the twin's weights;
// the float twin matches the reference at 1e-4; the MXFP4 model runs like it (only the int8
// rounding of activations differs); a converted GGUF keeps the MXFP4 experts; and a scale byte
// of 0xff (E8M0's NaN) or a missing *_scales tensor is refused, naming the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/convert.h"
#include "api/generate.h"
#include "common/test_util.h"
#include "compress/dense.h"
#include "core/error.h"
#include "model/model.h"
#include "model/session.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;

fs::path fixtures() {
  return fs::path(MCMOE_SOURCE_DIR) / "tests/data/families";
}

fs::path assemble(const std::string& name, const fs::path& dir) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fixtures() / name / f, dir / f);
  fs::copy_file(fixtures() / "tokenizer.model", dir / "tokenizer.model");
  return dir;
}

struct Reference {
  std::vector<int32_t> ids;
  std::vector<float> logits;  // [ids, vocab]
};

Reference load_reference() {
  std::ifstream in(fixtures() / "gpt_oss_mxfp4" / "reference.json");
  const auto j = nlohmann::json::parse(in);
  Reference r{j["ids"].get<std::vector<int32_t>>(), {}};
  for (const auto& row : j["logits"]) {
    const auto v = row.get<std::vector<float>>();
    r.logits.insert(r.logits.end(), v.begin(), v.end());
  }
  return r;
}

std::vector<float> logits(model::Model& m, const std::vector<int32_t>& ids) {
  model::Session s(m, {.n_ctx = 64, .n_threads = 2});
  const auto l = s.eval(ids, true);
  return {l.begin(), l.end()};
}

// The MXFP4 model against the reference of its float twin: activations are rounded to int8 on
// the quantized path, which on random weights can flip an expert choice, so per position:
// the argmax agrees on at least 80% of positions and the median relative error is below 5%
// (a wrong nibble order or scale moves every position by ~100%).
void expect_runs_like(const std::vector<float>& got, const Reference& ref, int64_t V,
                      const std::string& what) {
  ASSERT_EQ(got.size(), ref.logits.size()) << what;
  int agree = 0;
  std::vector<double> err;
  for (size_t t = 0; t < ref.ids.size(); ++t) {
    const std::span<const float> x(got.data() + t * V, V), y(ref.logits.data() + t * V, V);
    agree += api::argmax(x) == api::argmax(y);
    err.push_back(test::relative_max_error(x, y));
  }
  std::nth_element(err.begin(), err.begin() + err.size() / 2, err.end());
  EXPECT_GE(agree, static_cast<int>(ref.ids.size() * 8 / 10)) << what << ": of " << ref.ids.size();
  EXPECT_LT(err[err.size() / 2], 0.05) << what;
  std::printf("[mxfp4] %s: argmax agrees at %d of %zu positions, median relative error %.3g\n",
              what.c_str(), agree, ref.ids.size(), err[err.size() / 2]);
}

TEST(GptOssMxfp4, ExpertsAreExactlyTheFloatTwinsValues) {
  test::TempDir dir;
  auto mx = model::Model::load(assemble("gpt_oss_mxfp4", dir.dir() / "mx").string());
  auto twin = model::Model::load(assemble("gpt_oss_mxfp4_float", dir.dir() / "twin").string());
  const auto& a = mx->stored_experts();
  const auto& b = twin->stored_experts();
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (size_t l = 0; l < a.size(); ++l) {
    ASSERT_EQ(a[l].size(), b[l].size());
    for (size_t e = 0; e < a[l].size(); ++e) {
      const std::pair<const TensorView*, const TensorView*> pairs[] = {
          {&a[l][e].gate, &b[l][e].gate},
          {&a[l][e].up, &b[l][e].up},
          {&a[l][e].down, &b[l][e].down}};
      for (const auto& [q, f] : pairs) {
        ASSERT_EQ(q->type, DType::MXFP4) << "layer " << l << " expert " << e;
        ASSERT_EQ(q->shape, f->shape);
        const auto x = compress::to_dense(*q).data, y = compress::to_dense(*f).data;
        // Equal as numbers: E2M1's code for -0 dequantizes to +0 in ggml (its table is int8).
        ASSERT_TRUE(std::equal(x.begin(), x.end(), y.begin())) << "layer " << l << " expert " << e;
      }
    }
  }
}

TEST(GptOssMxfp4, RunsLikeTheReference) {
  const Reference ref = load_reference();
  test::TempDir dir;
  auto twin = model::Model::load(assemble("gpt_oss_mxfp4_float", dir.dir() / "twin").string());
  const int64_t V = twin->config().n_vocab;
  EXPECT_LT(test::relative_max_error(logits(*twin, ref.ids), ref.logits), 1e-4) << "the float twin";

  auto mx = model::Model::load(assemble("gpt_oss_mxfp4", dir.dir() / "mx").string());
  expect_runs_like(logits(*mx, ref.ids), ref, V, "Hugging Face MXFP4");

  // Converted to GGUF (llama.cpp's converter keeps gpt-oss's experts in MXFP4 too).
  api::convert_hf_to_gguf(dir.path("mx"), dir.path("m.gguf"), {.type = DType::F32});
  auto gguf = model::Model::load(dir.path("m.gguf"));
  EXPECT_EQ(gguf->stored_experts()[0][0].gate.type, DType::MXFP4);
  expect_runs_like(logits(*gguf, ref.ids), ref, V, "converted GGUF");
}

// Byte offset of a tensor's data in a safetensors file.
size_t data_offset(const fs::path& file, const std::string& name) {
  std::ifstream in(file, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  return 8 + n + nlohmann::json::parse(header)[name]["data_offsets"][0].get<size_t>();
}

TEST(GptOssMxfp4, NanScaleIsRefusedNamingTheTensor) {
  test::TempDir dir;
  const fs::path hf = assemble("gpt_oss_mxfp4", dir.dir() / "mx");
  const std::string name = "model.layers.1.mlp.experts.down_proj_scales";
  const size_t at = data_offset(hf / "model.safetensors", name) + 3;  // expert 0, row 0, block 3
  {
    std::fstream f(hf / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(0xff));
  }
  try {
    model::Model::load(hf.string());
    FAIL() << "a NaN scale was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find("expert 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
  }
}

TEST(GptOssMxfp4, OtherQuantMethodsAreRefused) {
  test::TempDir dir;
  const fs::path hf = assemble("gpt_oss_mxfp4", dir.dir() / "mx");
  auto cfg = nlohmann::json::parse(std::ifstream(hf / "config.json"));
  cfg["quantization_config"]["quant_method"] = "awq";
  std::ofstream(hf / "config.json") << cfg.dump();
  try {
    model::Model::load(hf.string());
    FAIL() << "quant_method awq was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'awq'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcmoe
