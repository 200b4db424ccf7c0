#include "format/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "core/mapped_file.h"

namespace mcmoe::format {

namespace {

// A header is JSON of at most a few MB even for the largest models; 100 MB means corruption.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

std::optional<DType> dtype_from_safetensors(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F16") return DType::F16;
  if (s == "BF16") return DType::BF16;
  if (s == "U8" || s == "I8") return DType::I8;  // raw bytes: MXFP4 blocks and scales
  return std::nullopt;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  const size_t size = file_->size();
  if (size < 8) fail("{}: truncated safetensors file: {} bytes, need at least 8 for the header length", path, size);
  uint64_t header_len;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > kMaxHeaderBytes || header_len > size - 8) {
    fail("{}: truncated or corrupted safetensors file: header length {} but file has {} bytes", path, header_len, size);
  }
  nlohmann::json header;
  try {
    header =
        parse_json(std::string_view(reinterpret_cast<const char*>(file_->data()) + 8, header_len));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed safetensors header JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);
  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_size = size - data_begin;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
      fail("{}: tensor '{}': header entry needs dtype, shape and data_offsets", path, name);
    }
    if (!info["dtype"].is_string()) fail("{}: tensor '{}': dtype is not a string", path, name);
    const std::string dt = info["dtype"].get<std::string>();
    const auto type = dtype_from_safetensors(dt);
    if (!type)
      fail(
          "{}: tensor '{}': dtype {} not supported (expected F32, F16, BF16, or U8 for packed "
          "MXFP4)",
          path, name, dt);
    const auto& shape_j = info["shape"];
    const auto& off_j = info["data_offsets"];
    if (!shape_j.is_array() || shape_j.size() > 4) fail("{}: tensor '{}': shape must be an array of at most 4 dimensions", path, name);
    if (!off_j.is_array() || off_j.size() != 2 || !off_j[0].is_number_unsigned() || !off_j[1].is_number_unsigned()) {
      fail("{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
    }
    TensorView v;
    v.type = *type;
    uint64_t numel = 1;
    for (const auto& d : shape_j) {
      if (!d.is_number_unsigned()) fail("{}: tensor '{}': shape entries must be non-negative integers", path, name);
      const uint64_t x = d.get<uint64_t>();
      if (x > (uint64_t{1} << 40)) fail("{}: tensor '{}': dimension {} not plausible", path, name, x);
      v.shape.push_back(static_cast<int64_t>(x));
      // Checked before multiplying: [2^40, 2^24] would wrap to 0 elements.
      if (x != 0 && numel > (uint64_t{1} << 44) / x) {
        fail("{}: tensor '{}': shape {} has more elements than plausible (2^44)", path, name,
             shape_j.dump());
      }
      numel *= x;
    }
    if (v.shape.empty()) v.shape.push_back(1);  // a scalar
    const uint64_t begin = off_j[0].get<uint64_t>(), end = off_j[1].get<uint64_t>();
    const uint64_t expected = numel * dtype_traits(v.type).block_bytes;
    if (end < begin || end - begin != expected) {
      fail("{}: tensor '{}': data_offsets [{}, {}) hold {} bytes, shape {} {} needs {}", path, name, begin, end, end - begin, shape_string(v.shape), dt, expected);
    }
    if (end > data_size) {
      fail("{}: tensor '{}': data [{}, {}) lies beyond the end of the data ({} bytes); the file is truncated", path, name, begin, end, data_size);
    }
    v.data = file_->data() + data_begin + begin;
    v.nbytes = end - begin;
    tensors_.emplace(name, std::move(v));
  }
}

SafetensorsSet::SafetensorsSet(const std::string& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  std::vector<std::string> shards;
  if (fs::exists(index_path)) {
    const nlohmann::json j = read_json_file(index_path.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail("{}: missing object 'weight_map'", index_path.string());
    std::set<std::string> unique;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) fail("{}: weight_map['{}'] is not a file name", index_path.string(), name);
      // Shards sit beside the index: a path elsewhere ("/dev/stdin", "../x") would make a
      // downloaded index read any file of this machine, or block on a device.
      const std::string shard = file.get<std::string>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
          shard.find('\0') != std::string::npos) {
        fail("{}: weight_map['{}'] = '{}' is not a file name in the model directory",
             index_path.string(), name, shard);
      }
      unique.insert(shard);
    }
    shards.assign(unique.begin(), unique.end());
  } else if (fs::exists(single)) {
    shards.push_back("model.safetensors");
  } else {
    fail("{}: no model.safetensors or model.safetensors.index.json", dir);
  }
  for (const auto& s : shards) {
    files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / s).string()));
    for (const auto& [name, view] : files_.back()->tensors()) {
      if (index_.count(name)) fail("{}: tensor '{}' appears in two shards", dir, name);
      index_[name] = {files_.back().get(), &view};
    }
  }
}

const TensorView* SafetensorsSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.second;
}

const TensorView& SafetensorsSet::get(const std::string& name) const {
  const TensorView* v = find(name);
  if (!v) fail("{}: missing tensor '{}'", dir_, name);
  return *v;
}

std::vector<std::string> SafetensorsSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : index_) out.push_back(name);
  return out;
}

}  // namespace mcmoe::format

namespace mcmoe::format {

void write_safetensors(const std::string& path, const std::map<std::string, TensorView>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, v] : tensors) {
    const char* dt = v.type == DType::F32 ? "F32" : v.type == DType::F16 ? "F16" : v.type == DType::BF16 ? "BF16" : nullptr;
    if (!dt) fail("{}: tensor '{}': type {} cannot be stored in safetensors", path, name, dtype_name(v.type));
    header[name] = {{"dtype", dt}, {"shape", v.shape}, {"data_offsets", {offset, offset + v.nbytes}}};
    offset += v.nbytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  AtomicFileWriter out(path);
  const uint64_t n = h.size();
  out.write(&n, 8);
  out.write(h.data(), h.size());
  for (const auto& [name, v] : tensors) out.write(v.data, v.nbytes);
  out.commit();
}

}  // namespace mcmoe::format
