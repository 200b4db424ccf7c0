#include "format/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "model/session.h"

namespace mcmoe::format {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ShardedCheckpointEqualsSingleFile) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("one"), {});
  test::write_hf_fixture(dir.path("sharded"), {});
  // Split the tensors of the single file over two shards with an index.
  const SafetensorsFile single(dir.path("one") + "/model.safetensors");
  std::map<std::string, TensorView> a, b;
  nlohmann::json weight_map;
  int i = 0;
  for (const auto& [name, view] : single.tensors()) {
    (i++ % 2 ? a : b)[name] = view;
    weight_map[name] = i % 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir.path("sharded") + "/model-00001-of-00002.safetensors", a);
  write_safetensors(dir.path("sharded") + "/model-00002-of-00002.safetensors", b);
  std::filesystem::remove(dir.path("sharded") + "/model.safetensors");
  std::ofstream(dir.path("sharded") + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump();

  auto m1 = model::Model::load(dir.path("one"));
  auto m2 = model::Model::load(dir.path("sharded"));
  const std::vector<int32_t> ids{1, 50, 60, 70};
  model::Session s1(*m1, {.n_ctx = 16, .n_threads = 1});
  model::Session s2(*m2, {.n_ctx = 16, .n_threads = 1});
  const auto l1 = s1.eval(ids, false);
  const std::vector<float> copy(l1.begin(), l1.end());
  const auto l2 = s2.eval(ids, false);
  EXPECT_TRUE(std::equal(copy.begin(), copy.end(), l2.begin()));
}

TEST(Safetensors, MissingTensorAndUnknownDtype) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  const std::string path = dir.path("hf") + "/model.safetensors";
  SafetensorsFile f(path);
  std::map<std::string, TensorView> tensors = f.tensors();
  tensors.erase("model.layers.1.block_sparse_moe.experts.2.w3.weight");
  write_safetensors(dir.path("hf") + "/model.safetensors.new", tensors);
  std::filesystem::rename(dir.path("hf") + "/model.safetensors.new", path);
  const std::string missing = error_of([&] { model::Model::load(dir.path("hf")); });
  EXPECT_NE(missing.find("missing tensor 'model.layers.1.block_sparse_moe.experts.2.w3.weight'"), std::string::npos) << missing;

  // Rewrite one dtype in the header to a type mcmoe does not read.
  auto bytes = test::read_bytes(path);
  const std::string from = "\"dtype\":\"F16\"", to = "\"dtype\":\"I16\"";
  auto it = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  ASSERT_NE(it, bytes.end());
  std::copy(to.begin(), to.end(), it);
  test::write_bytes(path, bytes);
  const std::string dtype = error_of([&] { SafetensorsFile g(path); });
  EXPECT_NE(dtype.find("dtype I16 not supported"), std::string::npos) << dtype;
  EXPECT_NE(dtype.find(path), std::string::npos) << dtype;
}

TEST(Safetensors, OffsetsThatDisagreeWithShape) {
  test::TempDir dir;
  std::vector<uint16_t> data(6, 0);
  TensorView v{.type = DType::F16, .shape = {2, 3}, .data = data.data(), .nbytes = 12};
  write_safetensors(dir.path("a.safetensors"), {{"x", v}});
  auto bytes = test::read_bytes(dir.path("a.safetensors"));
  const std::string from = "[2,3]", to = "[3,3]";
  auto it = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  ASSERT_NE(it, bytes.end());
  std::copy(to.begin(), to.end(), it);
  test::write_bytes(dir.path("a.safetensors"), bytes);
  const std::string msg = error_of([&] { SafetensorsFile f(dir.path("a.safetensors")); });
  EXPECT_NE(msg.find("tensor 'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 18"), std::string::npos) << msg;
}

TEST(Safetensors, IndexNamesShardsOnlyBesideIt) {
  // A downloaded index must not make mcmoe read other files of the machine, or block on a
  // FIFO or device it names.
  test::TempDir dir;
  std::filesystem::create_directories(dir.path("m"));
  std::vector<uint16_t> data(2, 0);
  TensorView v{.type = DType::F16, .shape = {2}, .data = data.data(), .nbytes = 4};
  write_safetensors(dir.path("outside.safetensors"), {{"x", v}});
  for (const std::string shard : {"../outside.safetensors", "/dev/stdin", "..", ""}) {
    std::ofstream(dir.path("m") + "/model.safetensors.index.json")
        << nlohmann::json{{"weight_map", {{"x", shard}}}}.dump();
    const std::string msg = error_of([&] { SafetensorsSet set(dir.path("m")); });
    EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << shard << ": " << msg;
    EXPECT_NE(msg.find("'" + shard + "' is not a file name in the model directory"),
              std::string::npos)
        << msg;
  }
}

TEST(Safetensors, ElementCountThatWouldWrapIsRefused) {
  // [2^40, 2^24] wrapped numel to 0 in 64 bits, and the tensor was accepted with 0 bytes.
  test::TempDir dir;
  const std::string header =
      R"({"x":{"dtype":"F32","shape":[1099511627776,16777216],"data_offsets":[0,0]}})";
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>((header.size() >> (8 * i)) & 0xff);
  bytes.insert(bytes.end(), header.begin(), header.end());
  test::write_bytes(dir.path("a.safetensors"), bytes);
  const std::string msg = error_of([&] { SafetensorsFile f(dir.path("a.safetensors")); });
  EXPECT_NE(msg.find("tensor 'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more elements than plausible"), std::string::npos) << msg;
}

TEST(Safetensors, FifoIsRefusedWithoutWaitingForAWriter) {
  test::TempDir dir;
  const std::string fifo = dir.path("m") + "/model.safetensors";
  std::filesystem::create_directories(dir.path("m"));
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string msg = error_of([&] { SafetensorsFile f(fifo); });  // blocked forever before
  EXPECT_NE(msg.find(fifo), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
  // The same for the JSON files beside it: a config.json that is a FIFO blocked in ifstream.
  test::write_hf_fixture(dir.path("hf"), {});
  std::filesystem::remove(dir.path("hf") + "/config.json");
  ASSERT_EQ(::mkfifo((dir.path("hf") + "/config.json").c_str(), 0600), 0);
  const std::string config = error_of([&] { model::Model::load(dir.path("hf")); });
  EXPECT_NE(config.find("config.json: not a regular file"), std::string::npos) << config;
}

}  // namespace
}  // namespace mcmoe::format
