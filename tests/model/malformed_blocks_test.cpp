// Corrupted quantized blocks are refused with a message naming the file, the tensor (or the
// expert), the block and the field: a scale that decodes to NaN or Inf, checked at load for
// everything read into memory and at first use for experts of a mapped file; and a tensor
// whose data runs past the end of the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "api/synth.h"
#include "common/kq_blocks.h"
#include "common/test_util.h"
#include "core/error.h"
#include "core/fp16.h"
#include "format/gguf.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/block_check.h"

namespace mcmoe {
namespace {

using Corrupt = std::function<void(uint8_t* blocks, int64_t n_blocks, size_t block_bytes)>;

// A synthetic model (2 layers, 4 experts, rows of 256) with tensor `target` stored as random
// blocks of `type`, then `corrupt` applied to them.
std::string write_model(const test::TempDir& dir, const std::string& target, DType type,
                        const Corrupt& corrupt) {
  api::SynthOptions o;
  o.layers = 2;
  o.dim = 256;
  o.ff = 512;
  o.experts = 4;
  o.vocab = 512;
  o.type = DType::F16;
  o.seed = 5;
  api::synth_model(o, dir.path("f16.gguf"));
  const format::GgufFile src(dir.path("f16.gguf"));
  format::GgufWriter w;
  for (const auto& [key, value] : src.metadata()) w.set(key, value);
  bool found = false;
  for (const format::GgufTensorInfo& t : src.tensors()) {
    const TensorView v = src.view(t);
    if (t.name != target) {
      const auto* bytes = static_cast<const uint8_t*>(v.data);
      w.add_tensor(t.name, t.type, t.shape,
                   [bytes](uint8_t* dst, size_t n) { std::memcpy(dst, bytes, n); });
      continue;
    }
    found = true;
    auto blocks = test::random_kq_blocks(type, v.rows(), v.cols(), 7, 0.02f);
    const DTypeTraits& tr = dtype_traits(type);
    corrupt(blocks.data(), static_cast<int64_t>(blocks.size() / tr.block_bytes), tr.block_bytes);
    w.add_tensor(t.name, type, t.shape,
                 [blocks](uint8_t* dst, size_t n) { std::memcpy(dst, blocks.data(), n); });
  }
  EXPECT_TRUE(found) << target;
  const std::string path = dir.path("model.gguf");
  w.write(path);
  return path;
}

void put_fp16(uint8_t* p, uint16_t h) {
  std::memcpy(p, &h, 2);
}

std::string load_error(const std::string& path, model::LoadOptions::Memory memory) {
  try {
    auto m = model::Model::load(path, {.memory = memory});
    model::Session s(*m, {.n_ctx = 64, .n_threads = 1});
    std::vector<int32_t> ids{1};
    for (int i = 1; i < 24; ++i) ids.push_back(3 + (i * 7919) % 500);
    s.eval(ids, false);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& text, std::initializer_list<const char*> parts) {
  for (const char* p : parts)
    EXPECT_NE(text.find(p), std::string::npos) << "'" << p << "' not in: " << text;
}

TEST(MalformedBlocks, NanScaleOfAnAttentionMatrixIsRefusedAtLoad) {
  test::TempDir dir;
  const std::string path =
      write_model(dir, "blk.0.attn_q.weight", DType::IQ2_XXS, [](uint8_t* b, int64_t, size_t bb) {
        put_fp16(b + 3 * bb, 0x7e00);  // block 3's d: NaN
      });
  for (auto memory : {model::LoadOptions::Memory::kRead, model::LoadOptions::Memory::kMap}) {
    const std::string e = load_error(path, memory);
    expect_contains(e, {"model.gguf", "blk.0.attn_q.weight", "iq2_xxs block 3 ",
                        "weights 768..1023", "field d is NaN", "0x7e00"});
  }
}

TEST(MalformedBlocks, InfScaleIsRefusedAtLoad) {
  test::TempDir dir;
  const std::string path =
      write_model(dir, "output.weight", DType::IQ4_XS, [](uint8_t* b, int64_t n, size_t bb) {
        put_fp16(b + (n - 1) * bb, 0xfc00);  // the last block's d: -Inf
      });
  expect_contains(load_error(path, model::LoadOptions::Memory::kRead),
                  {"output.weight", "field d is Inf"});
}

TEST(MalformedBlocks, Iq1mScaleBitsInTheScaleNibblesAreChecked) {
  test::TempDir dir;
  const std::string path = write_model(
      dir, "blk.1.attn_output.weight", DType::IQ1_M, [](uint8_t* b, int64_t, size_t bb) {
        // d = 0x7c01 (NaN) spread over the top nibbles of the four scale words.
        uint8_t* sc = b + 2 * bb + 48;
        for (int i = 0; i < 4; ++i) {
          uint16_t w;
          std::memcpy(&w, sc + 2 * i, 2);
          w = static_cast<uint16_t>((w & 0x0fff) | (((0x7c01 >> (4 * i)) & 0xf) << 12));
          std::memcpy(sc + 2 * i, &w, 2);
        }
      });
  expect_contains(load_error(path, model::LoadOptions::Memory::kRead),
                  {"blk.1.attn_output.weight", "iq1_m block 2 ", "NaN"});
}

// MXFP4 experts with an E8M0 scale of 0xff (NaN in the OCP format) in every expert's first
// block: refused at load when the file is read into memory, at the expert's first use when it
// is mapped.
TEST(MalformedBlocks, NanE8M0ScaleOfAnExpertIsRefused) {
  test::TempDir dir;
  const std::string path = write_model(dir, "blk.1.ffn_up_exps.weight", DType::MXFP4,
                                       [](uint8_t* b, int64_t n, size_t bb) {
                                         for (int e = 0; e < 4; ++e) b[e * (n / 4) * bb] = 0xff;
                                       });
  expect_contains(
      load_error(path, model::LoadOptions::Memory::kRead),
      {"tensor 'blk.1.ffn_up_exps.weight', expert 0", "mxfp4 block 0 ", "e (E8M0) is NaN"});
  // Mapped: the load itself succeeds; the first expert of layer 1 a token routes to fails.
  EXPECT_NO_THROW(model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap}));
  expect_contains(load_error(path, model::LoadOptions::Memory::kMap),
                  {"model.gguf: expert ", "of layer 1 (up)", "mxfp4 block 0 ", "e (E8M0) is NaN"});
}

TEST(MalformedBlocks, TruncatedTensorIsRefused) {
  test::TempDir dir;
  const std::string path =
      write_model(dir, "output.weight", DType::IQ3_S, [](uint8_t*, int64_t, size_t) {});
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 100);
  expect_contains(load_error(path, model::LoadOptions::Memory::kRead),
                  {"model.gguf", "lies beyond the end of the file"});
}

TEST(MalformedBlocks, FindBadScaleOnEveryFamily) {
  // A clean random block of each type passes; the same with its first scale field set to NaN
  // is found.
  for (DType t : {DType::Q8_0,    DType::Q4_0,   DType::Q4_1,   DType::Q5_0,    DType::Q5_1,
                  DType::Q2_K,    DType::Q3_K,   DType::Q4_K,   DType::Q5_K,    DType::Q6_K,
                  DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S,  DType::IQ3_XXS, DType::IQ3_S,
                  DType::IQ1_S,   DType::IQ4_NL, DType::IQ4_XS, DType::TQ1_0,   DType::TQ2_0}) {
    auto b = test::random_kq_blocks(t, 1, 256, 3, 0.1f);
    if (t == DType::Q8_0 || t == DType::Q4_0) {  // random_kq_blocks leaves these scales random
      for (size_t k = 0; k < b.size(); k += dtype_traits(t).block_bytes)
        put_fp16(b.data() + k, 0x3c00);
    }
    EXPECT_FALSE(quant::find_bad_scale(t, b.data(), b.size())) << dtype_name(t);
    const size_t off = t == DType::Q2_K    ? 80
                       : t == DType::Q3_K  ? 108
                       : t == DType::Q6_K  ? 208
                       : t == DType::TQ1_0 ? 52
                       : t == DType::TQ2_0 ? 64
                                           : 0;
    put_fp16(b.data() + off, 0x7e00);
    const auto bad = quant::find_bad_scale(t, b.data(), b.size());
    ASSERT_TRUE(bad) << dtype_name(t);
    EXPECT_EQ(bad->block, 0);
    EXPECT_EQ(bad->value, "NaN");
  }
}

}  // namespace
}  // namespace mcmoe
