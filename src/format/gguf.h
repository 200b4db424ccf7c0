#pragma once
// GGUF (v2, v3) reader and writer. The reader maps the file and validates every string,
// array, tensor shape and data range against the file size before anything is used, so a
// truncated or corrupted file fails with a message naming the file and the bad field.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace mcmoe::format {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

struct GgufValue;
struct GgufArray {
  GgufType elem_type = GgufType::U8;
  std::vector<GgufValue> items;
};

// One metadata value. Integers of every width are widened to int64/uint64 and floats to
// double; `type` keeps the stored type so a writer can reproduce it.
struct GgufValue {
  GgufType type = GgufType::U8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;

  static GgufValue u32(uint32_t x) { return {GgufType::U32, uint64_t{x}}; }
  static GgufValue i32(int32_t x) { return {GgufType::I32, int64_t{x}}; }
  static GgufValue u64(uint64_t x) { return {GgufType::U64, x}; }
  static GgufValue f32(float x) { return {GgufType::F32, double{x}}; }
  static GgufValue boolean(bool x) { return {GgufType::BOOL, x}; }
  static GgufValue str(std::string s) { return {GgufType::STRING, std::move(s)}; }
  static GgufValue array(GgufType elem, std::vector<GgufValue> items) {
    return {GgufType::ARRAY, GgufArray{elem, std::move(items)}};
  }
  std::string to_string(size_t max_items = 8) const;
};

struct GgufTensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> shape;  // outermost first (GGUF's ne[] reversed)
  uint64_t offset = 0;         // from the start of the data section
  size_t nbytes = 0;
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path, LoadMode mode = LoadMode::kMap);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of tensor data
  uint64_t file_size() const { return file_->size(); }

  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters throw Error naming the file and key when missing or of another type.
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  const GgufArray& get_array(const std::string& key) const;
  // With a default when the key is absent (still an error when present with a wrong type).
  uint64_t get_uint(const std::string& key, uint64_t def) const;
  double get_float(const std::string& key, double def) const;
  bool get_bool(const std::string& key, bool def) const;
  std::string get_string(const std::string& key, const std::string& def) const;

  const GgufTensorInfo* find_tensor(const std::string& name) const;
  TensorView view(const GgufTensorInfo& info) const;
  const uint8_t* base() const { return file_->data(); }

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Writes GGUF v3. Tensors are added with a producer that is called once, in order, while
// the file is written, so a converter holds at most one tensor in memory at a time.
class GgufWriter {
 public:
  using Producer = std::function<void(uint8_t* dst, size_t nbytes)>;

  void set(const std::string& key, GgufValue value);
  void add_tensor(const std::string& name, DType type, std::vector<int64_t> shape,
                  Producer produce);
  // Writes PATH atomically (temp file + rename); `progress(i, n)` after each tensor.
  void write(const std::string& path,
             const std::function<void(size_t, size_t)>& progress = nullptr) const;

  // The size of the file write() makes: header, then each tensor padded to kAlignment.
  uint64_t file_size() const;

  static constexpr uint64_t kAlignment = 32;

 private:
  struct Pending {
    std::string name;
    DType type;
    std::vector<int64_t> shape;
    Producer produce;
    size_t nbytes;
  };
  std::vector<uint8_t> header() const;  // up to the padding before the first tensor's data

  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace mcmoe::format
