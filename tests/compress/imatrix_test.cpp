// llama.cpp's importance-matrix file (compress/imatrix.h): a file laid out byte by byte as
// llama-imatrix writes it reads back as llama-quantize reads it (values / ncall), mcmoe's own
// files round-trip, and malformed files are refused naming the entry and the value.
#include "compress/imatrix.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"

namespace mcmoe::compress {
namespace {

void put_i32(std::string& s, int32_t v) {
  s.append(reinterpret_cast<const char*>(&v), 4);
}
void put_f32(std::string& s, float v) {
  s.append(reinterpret_cast<const char*>(&v), 4);
}
void put_entry(std::string& s, const std::string& name, int32_t ncall,
               const std::vector<float>& values) {
  put_i32(s, static_cast<int32_t>(name.size()));
  s += name;
  put_i32(s, ncall);
  put_i32(s, static_cast<int32_t>(values.size()));
  for (float v : values) put_f32(s, v);
}

std::string write(const test::TempDir& dir, const std::string& bytes) {
  const std::string path = dir.path("imatrix.dat");
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string error_reading(const std::string& path) {
  try {
    read_imatrix(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Imatrix, ReadsLlamaCppsLayoutAsLlamaQuantizeDoes) {
  test::TempDir dir;
  std::string s;
  put_i32(s, 2);
  put_entry(s, "blk.0.attn_q.weight", 4, {4.f, 8.f, 0.f, 2.f});
  put_entry(s, "blk.0.ffn_gate_exps.weight", 2, {1.f, 3.f, 5.f, 7.f});  // 2 experts × 2 columns
  put_i32(s, 10);                                                       // chunks
  put_i32(s, 9);
  s += "calib.txt";
  const ImportanceMatrix m = read_imatrix(write(dir, s));
  ASSERT_EQ(m.means.size(), 2u);
  EXPECT_EQ(m.means.at("blk.0.attn_q.weight"), (std::vector<float>{1.f, 2.f, 0.f, 0.5f}));
  EXPECT_EQ(m.means.at("blk.0.ffn_gate_exps.weight"), (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f}));
  EXPECT_EQ(m.chunks, 10);
  EXPECT_EQ(m.dataset, "calib.txt");

  // The trailer is optional (older files end after the entries).
  std::string old;
  put_i32(old, 1);
  put_entry(old, "output.weight", 1, {3.f});
  EXPECT_EQ(read_imatrix(write(dir, old)).means.at("output.weight"), std::vector<float>{3.f});
}

TEST(Imatrix, WriteThenReadRoundTrips) {
  test::TempDir dir;
  ImportanceMatrix m;
  m.chunks = 7;
  m.dataset = "text.txt";
  m.means["blk.1.attn_output.weight"] = {0.25f, 1.f, 3.5f};
  m.means["blk.1.ffn_down_exps.weight"] = {0.f, 2.f, 4.f, 8.f};
  const std::string path = dir.path("out.dat");
  write_imatrix(path, m);
  const ImportanceMatrix r = read_imatrix(path);
  EXPECT_EQ(r.means, m.means);
  EXPECT_EQ(r.chunks, 7);
  EXPECT_EQ(r.dataset, "text.txt");
}

TEST(Imatrix, MalformedFilesAreRefusedWithTheEntryAndValue) {
  test::TempDir dir;
  struct Case {
    std::string bytes, fragment;
  };
  std::vector<Case> cases;
  {
    std::string s;
    put_i32(s, 0);
    cases.push_back({s, "entry count 0"});
  }
  {
    std::string s;
    put_i32(s, 1);
    put_i32(s, -5);
    cases.push_back({s, "name length -5"});
  }
  {
    std::string s;
    put_i32(s, 1);
    put_i32(s, 1 << 30);
    cases.push_back({s, "name length 1073741824"});
  }
  {
    std::string s;
    put_i32(s, 1);
    put_i32(s, 3);
    s += "abc";
    put_i32(s, 1);
    put_i32(s, 1 << 30);  // a billion values declared, none present: refused before allocating
    cases.push_back({s, "'abc' declares 1073741824 values"});
  }
  {
    std::string s;
    put_i32(s, 1);
    put_entry(s, "abc", 1, {1.f, -2.f});
    cases.push_back({s, "'abc': value 1 is -2"});
  }
  {
    std::string s;
    put_i32(s, 2);
    put_entry(s, "abc", 1, {1.f});
    put_entry(s, "abc", 1, {1.f});
    cases.push_back({s, "'abc' appears twice"});
  }
  {
    std::string s;
    put_i32(s, 2);
    put_entry(s, "abc", 1, {1.f});
    cases.push_back({s, "truncated"});
  }
  {
    std::string s;
    put_i32(s, 1);
    put_entry(s, "abc", 1, {1.f});
    put_i32(s, 3);
    put_i32(s, 2);
    s += "xyz";
    cases.push_back({s, "1 bytes after the dataset name"});
  }
  for (const Case& c : cases) {
    const std::string path = write(dir, c.bytes);
    const std::string e = error_reading(path);
    EXPECT_NE(e.find(c.fragment), std::string::npos)
        << "want '" << c.fragment << "', got '" << e << "'";
    EXPECT_NE(e.find(path), std::string::npos) << e;
  }
  EXPECT_NE(error_reading(dir.path("missing.dat")).find("missing.dat"), std::string::npos);
}

}  // namespace
}  // namespace mcmoe::compress
