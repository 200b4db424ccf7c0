// A whole model with ggml's K-quant and Q4_1 / Q5_0 / Q5_1 matrices, and one with its i-quant,
// ternary and MXFP4 matrices (token embedding, attention,
// stacked experts, output head) runs like its twin whose matrices hold the same values as
// F32: the GGUF reader, the embedding lookup (dequantize_row) and the matmul kernels on the
// model's real shapes. (Files made by llama-quantize itself were checked by hand: perplexity
// and greedy text next to llama.cpp's, tests/data/kquants/README.md.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "api/generate.h"
#include "api/synth.h"
#include "common/kq_blocks.h"
#include "common/test_util.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

constexpr DType kKQuantTypes[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                                   DType::Q6_K, DType::Q4_1, DType::Q5_0, DType::Q5_1};
constexpr DType kIQuantTypes[] = {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S,  DType::IQ3_XXS,
                                  DType::IQ3_S,   DType::IQ1_S,  DType::IQ1_M,  DType::IQ4_NL,
                                  DType::IQ4_XS,  DType::TQ1_0,  DType::TQ2_0,  DType::MXFP4};

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

std::vector<float> dequantize(DType type, const uint8_t* data, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const size_t rb = row_bytes(type, cols);
  for (int64_t r = 0; r < rows; ++r) quant::dequantize_row(type, data + r * rb, out.data() + r * cols, cols);
  return out;
}

// From a synthetic F16 model, writes `kq_path` with every F16 matrix (but the router) replaced
// by random blocks of one of `types` in turn, at the matrix's own RMS, and `f32_path` with the
// same values as F32.
void write_twins(const std::string& f16_path, const std::string& kq_path, const std::string& f32_path,
                 std::span<const DType> types) {
  const format::GgufFile src(f16_path);
  format::GgufWriter kq, f32;
  for (const auto& [key, value] : src.metadata()) {
    kq.set(key, value);
    f32.set(key, value);
  }
  size_t next = 0;
  for (const format::GgufTensorInfo& t : src.tensors()) {
    const TensorView v = src.view(t);
    const int64_t cols = t.shape.back();
    const int64_t rows = v.rows();
    if (t.type != DType::F16 || t.shape.size() < 2 || t.name.find("ffn_gate_inp") != std::string::npos) {
      const auto* bytes = static_cast<const uint8_t*>(v.data);
      auto copy = [bytes](uint8_t* dst, size_t n) { std::memcpy(dst, bytes, n); };
      kq.add_tensor(t.name, t.type, t.shape, copy);
      f32.add_tensor(t.name, t.type, t.shape, copy);
      continue;
    }
    const DType type = types[next++ % types.size()];
    ASSERT_EQ(cols % dtype_traits(type).block_size, 0) << t.name;
    const double want = rms(dequantize(DType::F16, static_cast<const uint8_t*>(v.data), rows, cols));
    const uint32_t seed = static_cast<uint32_t>(next);
    const double unit = rms(dequantize(type, test::random_kq_blocks(type, rows, cols, seed, 1.f).data(), rows, cols));
    const auto blocks = test::random_kq_blocks(type, rows, cols, seed, static_cast<float>(want / unit));
    const auto values = dequantize(type, blocks.data(), rows, cols);
    kq.add_tensor(t.name, type, t.shape, [blocks](uint8_t* dst, size_t n) {
      std::memcpy(dst, blocks.data(), n);
    });
    f32.add_tensor(t.name, DType::F32, t.shape, [values](uint8_t* dst, size_t n) {
      std::memcpy(dst, values.data(), n);
    });
  }
  ASSERT_GE(next, types.size()) << "every type should appear at least once";
  kq.write(kq_path);
  f32.write(f32_path);
}

std::vector<float> all_logits(model::Model& m, const std::vector<int32_t>& ids) {
  model::Session s(m, {.n_ctx = 128, .n_threads = 2});
  const auto l = s.eval(ids, true);
  return std::vector<float>(l.begin(), l.end());
}

void check_runs_like_f32_twin(std::span<const DType> types) {
  test::TempDir dir;
  api::SynthOptions o;
  o.layers = 2;
  o.dim = 256;  // rows of 256: whole K-quant super-blocks
  o.ff = 512;
  o.experts = 4;
  o.vocab = 512;
  o.type = DType::F16;
  o.seed = 3;
  api::synth_model(o, dir.path("f16.gguf"));
  write_twins(dir.path("f16.gguf"), dir.path("kq.gguf"), dir.path("f32.gguf"), types);
  if (testing::Test::HasFatalFailure()) return;
  auto kq = model::Model::load(dir.path("kq.gguf"));
  auto f32 = model::Model::load(dir.path("f32.gguf"));
  std::vector<int32_t> ids{1};
  for (int i = 1; i < 40; ++i) ids.push_back(3 + (i * 7919) % 500);
  const auto a = all_logits(*kq, ids), b = all_logits(*f32, ids);
  ASSERT_EQ(a.size(), b.size());
  for (float x : a) ASSERT_TRUE(std::isfinite(x));
  // The only difference is the int8 rounding of the activations on the quantized path, which
  // random weights amplify where it flips an expert choice (then a row's logits move by
  // ~40%). So, per row: the predicted token agrees on at least 80% of rows, and the median
  // row's relative error (max |difference| / max |logit|) is below 5% (measured ~1.6%); a
  // wrong bit layout in any one matrix agrees on ~1/512 and moves every row by ~100%.
  const int64_t V = kq->config().n_vocab;
  int agree = 0;
  std::vector<double> row_error;
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::span<const float> x(a.data() + t * V, V), y(b.data() + t * V, V);
    agree += api::argmax(x) == api::argmax(y);
    row_error.push_back(test::relative_max_error(x, y));
  }
  EXPECT_GE(agree, static_cast<int>(ids.size() * 8 / 10)) << "of " << ids.size();
  std::nth_element(row_error.begin(), row_error.begin() + row_error.size() / 2, row_error.end());
  EXPECT_LT(row_error[row_error.size() / 2], 0.05);
}


TEST(KQuantModel, RunsLikeItsF32Twin) { check_runs_like_f32_twin(kKQuantTypes); }

// The same for llama.cpp's i-quant, ternary and MXFP4 matrices.
TEST(IQuantModel, RunsLikeItsF32Twin) { check_runs_like_f32_twin(kIQuantTypes); }

}  // namespace
}  // namespace mcmoe
