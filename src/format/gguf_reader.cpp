#include <cstring>
#include <limits>

#include "core/error.h"
#include "format/gguf.h"

namespace mcmoe::format {

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

std::string GgufValue::to_string(size_t max_items) const {
  if (auto* s = std::get_if<std::string>(&v)) return "\"" + *s + "\"";
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (auto* u = std::get_if<uint64_t>(&v)) return std::to_string(*u);
  if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  const auto& a = std::get<GgufArray>(v);
  std::string out = fmt::format("{}[{}]: [", gguf_type_name(a.elem_type), a.items.size());
  for (size_t i = 0; i < a.items.size() && i < max_items; ++i) {
    out += (i ? ", " : "") + a.items[i].to_string(max_items);
  }
  return out + (a.items.size() > max_items ? ", ...]" : "]");
}

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
// Generous limits that still stop a corrupted count from allocating the machine away.
constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;
constexpr int kMaxArrayDepth = 2;
// Array elements in all of a file's metadata. Each costs about 48 bytes in memory, so a
// small file of one-byte elements could otherwise ask for 48x its size; the largest real
// vocabularies (gpt-oss: 200k tokens, 446k merges, scores, types) hold about 1.1M.
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;
constexpr uint64_t kMaxTensors = uint64_t{1} << 20;

class Cursor {
 public:
  Cursor(const MappedFile& f) : f_(f) {}
  uint64_t pos() const { return pos_; }
  uint64_t values_left = kMaxMetadataValues;  // see kMaxMetadataValues

  void need(uint64_t n, const char* what) {
    if (n > f_.size() || pos_ > f_.size() - n) {
      fail("{}: truncated GGUF: need {} bytes for {} at offset {}, file has {} bytes", f_.path(),
           n, what, pos_, f_.size());
    }
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }
  std::string read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (n > kMaxStringBytes) fail("{}: {} has length {} at offset {}, not plausible", f_.path(), what, n, pos_ - 8);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(f_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const MappedFile& f_;
  uint64_t pos_ = 0;
};

size_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

GgufValue read_value(Cursor& c, GgufType type, const std::string& key, const std::string& path,
                     int depth) {
  GgufValue out;
  out.type = type;
  switch (type) {
    case GgufType::U8: out.v = uint64_t{c.read<uint8_t>(key.c_str())}; break;
    case GgufType::I8: out.v = int64_t{c.read<int8_t>(key.c_str())}; break;
    case GgufType::U16: out.v = uint64_t{c.read<uint16_t>(key.c_str())}; break;
    case GgufType::I16: out.v = int64_t{c.read<int16_t>(key.c_str())}; break;
    case GgufType::U32: out.v = uint64_t{c.read<uint32_t>(key.c_str())}; break;
    case GgufType::I32: out.v = int64_t{c.read<int32_t>(key.c_str())}; break;
    case GgufType::U64: out.v = c.read<uint64_t>(key.c_str()); break;
    case GgufType::I64: out.v = c.read<int64_t>(key.c_str()); break;
    case GgufType::F32: out.v = double{c.read<float>(key.c_str())}; break;
    case GgufType::F64: out.v = c.read<double>(key.c_str()); break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>(key.c_str());
      if (b > 1) fail("{}: key '{}': bool value {} is not 0 or 1", path, key, b);
      out.v = b != 0;
      break;
    }
    case GgufType::STRING: out.v = c.read_string(key.c_str()); break;
    case GgufType::ARRAY: {
      if (depth >= kMaxArrayDepth) fail("{}: key '{}': arrays nested deeper than {}", path, key, kMaxArrayDepth);
      const uint32_t et = c.read<uint32_t>(key.c_str());
      if (et > static_cast<uint32_t>(GgufType::F64)) {
        fail("{}: key '{}': unknown array element type {} (expected 0..12)", path, key, et);
      }
      const uint64_t n = c.read<uint64_t>(key.c_str());
      const GgufType elem = static_cast<GgufType>(et);
      // Every element needs at least min_value_bytes: reject counts the file cannot hold, or
      // that no model's metadata reaches, before reserving memory for them (n is bounded
      // first, so n * min_value_bytes cannot overflow).
      if (n > c.values_left) {
        fail(
            "{}: key '{}': array of {} elements takes the file's metadata past {} values, not "
            "plausible",
            path, key, n, kMaxMetadataValues);
      }
      c.values_left -= n;
      c.need(n * min_value_bytes(elem), key.c_str());
      GgufArray arr;
      arr.elem_type = elem;
      arr.items.reserve(n);
      for (uint64_t i = 0; i < n; ++i) arr.items.push_back(read_value(c, elem, key, path, depth + 1));
      out.v = std::move(arr);
      break;
    }
    default: fail("{}: key '{}': unknown value type {} (expected 0..12)", path, key, static_cast<uint32_t>(type));
  }
  return out;
}

}  // namespace

GgufFile::GgufFile(const std::string& path, LoadMode mode)
    : file_(std::make_shared<MappedFile>(path, mode)) {
  Cursor c(*file_);
  if (file_->size() < 4) fail("{}: not a GGUF file: {} bytes, too short for the magic", path, file_->size());
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    fail("{}: not a GGUF file: magic 0x{:08x}, expected 0x{:08x} (\"GGUF\")", path, magic, kMagic);
  }
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) fail("{}: GGUF version {} not supported (expected 2 or 3)", path, version_);
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A tensor info needs >= 28 bytes and a key/value >= 13: counts beyond what the file can
  // hold mean a corrupted header.
  if (n_tensors > file_->size() / 28) fail("{}: corrupted header: tensor count {} exceeds what {} bytes can hold", path, n_tensors, file_->size());
  if (n_kv > file_->size() / 13) fail("{}: corrupted header: metadata count {} exceeds what {} bytes can hold", path, n_kv, file_->size());

  for (uint64_t i = 0; i < n_kv; ++i) {
    if (c.values_left == 0)
      fail("{}: metadata past {} values, not plausible", path, kMaxMetadataValues);
    --c.values_left;  // each entry costs about as much as an array element (kMaxMetadataValues)
    std::string key = c.read_string("metadata key");
    const uint32_t t = c.read<uint32_t>("metadata value type");
    if (t > static_cast<uint32_t>(GgufType::F64)) {
      fail("{}: key '{}': unknown value type {} (expected 0..12)", path, key, t);
    }
    GgufValue v = read_value(c, static_cast<GgufType>(t), key, path, 0);
    if (kv_.count(key)) fail("{}: duplicate metadata key '{}'", path, key);
    kv_.emplace(std::move(key), std::move(v));
  }

  uint64_t alignment = get_uint("general.alignment", 32);
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    fail("{}: general.alignment is {}, expected a power of two", path, alignment);
  }

  // Far above any model (DeepSeek-V3: ~1.1k tensors with stacked experts, ~92k unstacked);
  // each info costs ~100 bytes, 3.5x the 28 bytes a hostile file spends on it.
  if (n_tensors > kMaxTensors)
    fail("{}: {} tensors, more than plausible ({})", path, n_tensors, kMaxTensors);
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo info;
    info.name = c.read_string("tensor name");
    const uint32_t n_dims = c.read<uint32_t>("tensor dimension count");
    if (n_dims < 1 || n_dims > 4) fail("{}: tensor '{}': {} dimensions, expected 1..4", path, info.name, n_dims);
    std::vector<int64_t> ne(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t x = c.read<uint64_t>("tensor dimension");
      if (x == 0 || x > (uint64_t{1} << 40)) fail("{}: tensor '{}': dimension {} is {}, not plausible", path, info.name, d, x);
      ne[d] = static_cast<int64_t>(x);
    }
    info.shape.assign(ne.rbegin(), ne.rend());
    const uint32_t type_id = c.read<uint32_t>("tensor type");
    const auto type = dtype_from_ggml_id(type_id);
    if (!type) {
      std::string known;
      for (DType t : kAllDTypes) {
        known += fmt::format("{}{}={}", known.empty() ? "" : ", ", dtype_name(t), static_cast<uint32_t>(t));
      }
      fail("{}: tensor '{}': ggml type {} is not supported (supported: {})", path, info.name, type_id, known);
    }
    info.type = *type;
    info.offset = c.read<uint64_t>("tensor offset");
    const int64_t block = dtype_traits(info.type).block_size;
    if (ne[0] % block != 0) {
      fail("{}: tensor '{}': row length {} is not a multiple of the {} block size {}", path, info.name, ne[0], dtype_name(info.type), block);
    }
    // Overflow-safe byte count: dimensions are capped at 2^40 each, check the product.
    long double total = static_cast<long double>(row_bytes(info.type, ne[0]));
    for (uint32_t d = 1; d < n_dims; ++d) total *= ne[d];
    if (total > static_cast<long double>(file_->size())) {
      fail("{}: tensor '{}': {} bytes for shape {} exceed the file size {}", path, info.name, static_cast<double>(total), shape_string(info.shape), file_->size());
    }
    info.nbytes = static_cast<size_t>(total);
    if (info.offset % alignment != 0) fail("{}: tensor '{}': offset {} is not aligned to {}", path, info.name, info.offset, alignment);
    if (tensor_index_.count(info.name)) fail("{}: duplicate tensor name '{}'", path, info.name);
    tensor_index_[info.name] = tensors_.size();
    tensors_.push_back(std::move(info));
  }
  data_offset_ = (c.pos() + alignment - 1) / alignment * alignment;
  for (const auto& t : tensors_) {
    if (data_offset_ > file_->size() || t.offset > file_->size() - data_offset_ ||
        t.nbytes > file_->size() - data_offset_ - t.offset) {
      fail("{}: tensor '{}': data [{}, {}) lies beyond the end of the file ({} bytes); the file is truncated or corrupted", path, t.name, data_offset_ + t.offset, data_offset_ + t.offset + t.nbytes, file_->size());
    }
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const char* expected, const GgufValue& v) {
  fail("{}: key '{}': expected {}, found {}", path, key, expected, gguf_type_name(v.type));
}
}  // namespace

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* u = std::get_if<uint64_t>(&v->v)) return *u;
  if (auto* i = std::get_if<int64_t>(&v->v); i && *i >= 0) return static_cast<uint64_t>(*i);
  wrong_type(path(), key, "a non-negative integer", *v);
}
int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* i = std::get_if<int64_t>(&v->v)) return *i;
  if (auto* u = std::get_if<uint64_t>(&v->v); u && *u <= uint64_t(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(*u);
  wrong_type(path(), key, "an integer", *v);
}
double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* d = std::get_if<double>(&v->v)) return *d;
  if (auto* u = std::get_if<uint64_t>(&v->v)) return static_cast<double>(*u);
  if (auto* i = std::get_if<int64_t>(&v->v)) return static_cast<double>(*i);
  wrong_type(path(), key, "a number", *v);
}
bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* b = std::get_if<bool>(&v->v)) return *b;
  wrong_type(path(), key, "a bool", *v);
}
std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* s = std::get_if<std::string>(&v->v)) return *s;
  wrong_type(path(), key, "a string", *v);
}
const GgufArray& GgufFile::get_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", path(), key);
  if (auto* a = std::get_if<GgufArray>(&v->v)) return *a;
  wrong_type(path(), key, "an array", *v);
}
uint64_t GgufFile::get_uint(const std::string& key, uint64_t def) const { return has(key) ? get_uint(key) : def; }
double GgufFile::get_float(const std::string& key, double def) const { return has(key) ? get_float(key) : def; }
bool GgufFile::get_bool(const std::string& key, bool def) const { return has(key) ? get_bool(key) : def; }
std::string GgufFile::get_string(const std::string& key, const std::string& def) const { return has(key) ? get_string(key) : def; }

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

TensorView GgufFile::view(const GgufTensorInfo& info) const {
  TensorView v;
  v.type = info.type;
  v.shape = info.shape;
  v.data = file_->data() + data_offset_ + info.offset;
  v.nbytes = info.nbytes;
  return v;
}

}  // namespace mcmoe::format
