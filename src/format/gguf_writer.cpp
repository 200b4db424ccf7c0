#include <cstring>
#include <set>

#include "core/error.h"
#include "format/gguf.h"

namespace mcmoe::format {

namespace {

class Buffer {
 public:
  template <typename T>
  void put(T x) {
    const size_t n = bytes_.size();
    bytes_.resize(n + sizeof(T));
    std::memcpy(bytes_.data() + n, &x, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

void put_value(Buffer& b, const GgufValue& v) {
  auto as_u = [&] { return std::holds_alternative<uint64_t>(v.v) ? std::get<uint64_t>(v.v) : static_cast<uint64_t>(std::get<int64_t>(v.v)); };
  auto as_i = [&] { return std::holds_alternative<int64_t>(v.v) ? std::get<int64_t>(v.v) : static_cast<int64_t>(std::get<uint64_t>(v.v)); };
  switch (v.type) {
    case GgufType::U8: b.put<uint8_t>(static_cast<uint8_t>(as_u())); break;
    case GgufType::I8: b.put<int8_t>(static_cast<int8_t>(as_i())); break;
    case GgufType::U16: b.put<uint16_t>(static_cast<uint16_t>(as_u())); break;
    case GgufType::I16: b.put<int16_t>(static_cast<int16_t>(as_i())); break;
    case GgufType::U32: b.put<uint32_t>(static_cast<uint32_t>(as_u())); break;
    case GgufType::I32: b.put<int32_t>(static_cast<int32_t>(as_i())); break;
    case GgufType::U64: b.put<uint64_t>(as_u()); break;
    case GgufType::I64: b.put<int64_t>(as_i()); break;
    case GgufType::F32: b.put<float>(static_cast<float>(std::get<double>(v.v))); break;
    case GgufType::F64: b.put<double>(std::get<double>(v.v)); break;
    case GgufType::BOOL: b.put<uint8_t>(std::get<bool>(v.v) ? 1 : 0); break;
    case GgufType::STRING: b.put_string(std::get<std::string>(v.v)); break;
    case GgufType::ARRAY: {
      const auto& a = std::get<GgufArray>(v.v);
      b.put<uint32_t>(static_cast<uint32_t>(a.elem_type));
      b.put<uint64_t>(a.items.size());
      for (const auto& item : a.items) put_value(b, item);
      break;
    }
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, DType type, std::vector<int64_t> shape,
                            Producer produce) {
  for (const auto& t : tensors_) {
    if (t.name == name) fail("GGUF writer: duplicate tensor name '{}'", name);
  }
  if (shape.empty() || shape.size() > 4) fail("GGUF writer: tensor '{}' has {} dimensions, expected 1..4", name, shape.size());
  size_t nbytes = row_bytes(type, shape.back());
  for (size_t i = 0; i + 1 < shape.size(); ++i) nbytes *= static_cast<size_t>(shape[i]);
  tensors_.push_back({name, type, std::move(shape), std::move(produce), nbytes});
}

std::vector<uint8_t> GgufWriter::header() const {
  Buffer header;
  header.put<uint32_t>(0x46554747);
  header.put<uint32_t>(3);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    header.put_string(key);
    header.put<uint32_t>(static_cast<uint32_t>(value.type));
    put_value(header, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    header.put_string(t.name);
    header.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) header.put<uint64_t>(static_cast<uint64_t>(*it));
    header.put<uint32_t>(static_cast<uint32_t>(t.type));
    header.put<uint64_t>(offset);
    offset += (t.nbytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  return header.bytes();
}

uint64_t GgufWriter::file_size() const {
  uint64_t n = (header().size() + kAlignment - 1) / kAlignment * kAlignment;
  for (const auto& t : tensors_) n += (t.nbytes + kAlignment - 1) / kAlignment * kAlignment;
  return n;
}

void GgufWriter::write(const std::string& path,
                       const std::function<void(size_t, size_t)>& progress) const {
  const std::vector<uint8_t> head = header();
  AtomicFileWriter out(path);
  out.write(head.data(), head.size());
  out.write_zeros((kAlignment - out.offset() % kAlignment) % kAlignment);
  std::vector<uint8_t> scratch;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    scratch.assign(t.nbytes, 0);
    t.produce(scratch.data(), t.nbytes);
    out.write(scratch.data(), scratch.size());
    out.write_zeros((kAlignment - t.nbytes % kAlignment) % kAlignment);
    if (progress) progress(i + 1, tensors_.size());
  }
  out.commit();
}

}  // namespace mcmoe::format
