#include <gtest/gtest.h>

#include <cstring>

#include "common/test_util.h"
#include "core/error.h"
#include "format/gguf.h"

namespace mcmoe::format {
namespace {

using test::TempDir;

std::string write_small(const TempDir& dir) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("test.u32", GgufValue::u32(7));
  w.set("test.f32", GgufValue::f32(0.5f));
  w.set("test.bool", GgufValue::boolean(true));
  w.set("test.strings", GgufValue::array(GgufType::STRING, {GgufValue::str("a"), GgufValue::str("bc")}));
  w.add_tensor("t.f32", DType::F32, {2, 3}, [](uint8_t* dst, size_t n) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    std::memcpy(dst, v, n);
  });
  w.add_tensor("t.q8", DType::Q8_0, {4, 64}, [](uint8_t* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(i);
  });
  const std::string path = dir.path("small.gguf");
  w.write(path);
  return path;
}

TEST(Gguf, RoundTripsMetadataAndTensors) {
  TempDir dir;
  const std::string path = write_small(dir);
  GgufFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("test.u32"), 7u);
  EXPECT_FLOAT_EQ(f.get_float("test.f32"), 0.5);
  EXPECT_TRUE(f.get_bool("test.bool"));
  EXPECT_EQ(f.get_array("test.strings").items.size(), 2u);
  const auto* t = f.find_tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  const TensorView v = f.view(*t);
  EXPECT_EQ(static_cast<const float*>(v.data)[5], 6.f);
  const auto* q = f.find_tensor("t.q8");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->nbytes, 4u * 2 * 34);
  EXPECT_EQ(f.view(*q).row(1)[0], static_cast<uint8_t>(68));
  EXPECT_EQ(f.data_offset() % 32, 0u);
}

TEST(Gguf, WrongTypeAndMissingKeyNameTheKey) {
  TempDir dir;
  GgufFile f(write_small(dir));
  try {
    f.get_string("test.u32");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.u32"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("expected a string, found u32"), std::string::npos);
  }
  EXPECT_THROW(f.get_uint("no.such.key"), Error);
}

void expect_error(const std::string& path, const std::string& fragment) {
  try {
    GgufFile f(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Gguf, MetadataArraysAreBoundedBeforeTheirBytesAreCounted) {
  TempDir dir;
  // One array of 2^62 U32 elements: count x 4 bytes wrapped to 0 before the size check.
  test::GgufBytes g;
  g.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1);
  g.str("tokenizer.ggml.token_type")
      .put<uint32_t>(9)
      .put<uint32_t>(4)
      .put<uint64_t>(uint64_t{1} << 62);
  g.bytes().resize(g.bytes().size() + 64, 0);
  test::write_bytes(dir.path("a.gguf"), g.bytes());
  try {
    GgufFile f(dir.path("a.gguf"));
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tokenizer.ggml.token_type"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4611686018427387904 elements"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not plausible"), std::string::npos) << msg;
  }
}

TEST(Gguf, RejectsBadMagic) {
  TempDir dir;
  auto bytes = test::read_bytes(write_small(dir));
  bytes[0] = 'X';
  test::write_bytes(dir.path("bad.gguf"), bytes);
  expect_error(dir.path("bad.gguf"), "magic");
}

TEST(Gguf, RejectsCorruptedHeaderCounts) {
  TempDir dir;
  auto bytes = test::read_bytes(write_small(dir));
  const uint64_t huge = 1ull << 50;
  std::memcpy(bytes.data() + 8, &huge, 8);  // tensor count
  test::write_bytes(dir.path("bad.gguf"), bytes);
  expect_error(dir.path("bad.gguf"), "tensor count");
}

TEST(Gguf, RejectsUnsupportedVersion) {
  TempDir dir;
  auto bytes = test::read_bytes(write_small(dir));
  bytes[4] = 9;
  test::write_bytes(dir.path("bad.gguf"), bytes);
  expect_error(dir.path("bad.gguf"), "version 9");
}

TEST(Gguf, RejectsTruncationAtEveryPoint) {
  TempDir dir;
  const auto bytes = test::read_bytes(write_small(dir));
  // Every prefix that cuts into the last tensor's data (the final 16 bytes are alignment
  // padding) must fail with an Error, never crash or hang.
  for (size_t n = 0; n + 16 < bytes.size(); n += 7) {
    test::write_bytes(dir.path("t.gguf"), std::vector<uint8_t>(bytes.begin(), bytes.begin() + n));
    EXPECT_THROW(GgufFile f(dir.path("t.gguf")), Error) << "prefix " << n;
  }
}

TEST(Gguf, RejectsTensorDataBeyondEnd) {
  TempDir dir;
  auto bytes = test::read_bytes(write_small(dir));
  // Drop the last 64 bytes: the header is intact, the q8 tensor's data is not.
  bytes.resize(bytes.size() - 64);
  test::write_bytes(dir.path("bad.gguf"), bytes);
  expect_error(dir.path("bad.gguf"), "beyond the end of the file");
}

TEST(Gguf, RejectsUnknownTensorType) {
  TempDir dir;
  const std::string path = write_small(dir);
  auto bytes = test::read_bytes(path);
  // Find the tensor info of "t.f32" and patch its type id (after name, n_dims, 2 dims).
  // The name is stored as a u64 length then the bytes; "test.f32" also contains "t.f32".
  std::string name("\x05\0\0\0\0\0\0\0t.f32", 13);
  auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  ASSERT_NE(it, bytes.end());
  const size_t type_pos = static_cast<size_t>(it - bytes.begin()) + name.size() + 4 + 16;
  const uint32_t bogus = 99;
  std::memcpy(bytes.data() + type_pos, &bogus, 4);
  test::write_bytes(dir.path("bad.gguf"), bytes);
  expect_error(dir.path("bad.gguf"), "ggml type 99");
}

TEST(Gguf, WriterLeavesNoFileOnFailure) {
  TempDir dir;
  GgufWriter w;
  w.add_tensor("x", DType::F32, {4}, [](uint8_t*, size_t) { throw Error("producer failed"); });
  EXPECT_THROW(w.write(dir.path("out.gguf")), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.dir()));
}

}  // namespace
}  // namespace mcmoe::format
