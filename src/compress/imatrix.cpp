#include "compress/imatrix.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/mapped_file.h"

namespace mcmoe::compress {

namespace {

// A name longer than any tensor name, and more values than any tensor has inputs (2^31 floats
// would be 8 GB), are refused before anything is allocated.
constexpr int32_t kMaxName = 4096;

class Reader {
 public:
  Reader(const std::string& path, std::vector<uint8_t> bytes)
      : path_(path), bytes_(std::move(bytes)) {}
  bool at_end() const { return pos_ == bytes_.size(); }
  size_t left() const { return bytes_.size() - pos_; }
  int32_t i32(const std::string& what) {
    need(4, what);
    int32_t v;
    std::memcpy(&v, bytes_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  std::string str(size_t n, const std::string& what) {
    need(n, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void floats(float* out, size_t n, const std::string& what) {
    need(n * 4, what);
    std::memcpy(out, bytes_.data() + pos_, n * 4);
    pos_ += n * 4;
  }

 private:
  void need(size_t n, const std::string& what) const {
    if (left() < n)
      fail("{}: truncated: {} needs {} bytes at offset {}, {} left", path_, what, n, pos_, left());
  }
  std::string path_;
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
};

void put_i32(std::string& out, int32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

}  // namespace

ImportanceMatrix read_imatrix(const std::string& path) {
  std::ifstream in = open_regular_file(path, std::ios::binary);
  if (!in) fail("{}: cannot open the importance matrix", path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  Reader r(path, std::move(bytes));
  ImportanceMatrix m;
  const int32_t n = r.i32("the entry count");
  if (n < 1) fail("{}: entry count {}: expected at least 1", path, n);
  for (int32_t i = 0; i < n; ++i) {
    const std::string entry = fmt::format("entry {}", i);
    const int32_t len = r.i32(entry + "'s name length");
    if (len < 1 || len > kMaxName)
      fail("{}: {}: name length {}, expected 1..{}", path, entry, len, kMaxName);
    const std::string name = r.str(static_cast<size_t>(len), entry + "'s name");
    const int32_t ncall = r.i32("'" + name + "' ncall");
    const int32_t nval = r.i32("'" + name + "' value count");
    if (ncall < 0) fail("{}: '{}': ncall {}, expected ≥ 0", path, name, ncall);
    if (nval < 1) fail("{}: '{}': {} values, expected at least 1", path, name, nval);
    if (static_cast<size_t>(nval) * 4 > r.left()) {
      fail("{}: truncated: '{}' declares {} values ({} bytes), {} bytes left", path, name, nval,
           static_cast<size_t>(nval) * 4, r.left());
    }
    std::vector<float> v(static_cast<size_t>(nval));
    r.floats(v.data(), v.size(), "'" + name + "' values");
    for (size_t k = 0; k < v.size(); ++k) {
      if (!std::isfinite(v[k]) || v[k] < 0)
        fail("{}: '{}': value {} is {}, expected finite and ≥ 0", path, name, k, v[k]);
      if (ncall > 0) v[k] /= static_cast<float>(ncall);  // llama-quantize's reading
    }
    if (!m.means.emplace(name, std::move(v)).second) fail("{}: '{}' appears twice", path, name);
  }
  if (!r.at_end()) {
    m.chunks = r.i32("the chunk count");
    const int32_t len = r.i32("the dataset name length");
    if (len < 0 || len > kMaxName)
      fail("{}: dataset name length {}, expected 0..{}", path, len, kMaxName);
    m.dataset = r.str(static_cast<size_t>(len), "the dataset name");
    if (!r.at_end())
      fail("{}: {} bytes after the dataset name; expected the end of the file", path, r.left());
  }
  return m;
}

void write_imatrix(const std::string& path, const ImportanceMatrix& m) {
  if (m.means.empty()) fail("{}: no importance entries to write", path);
  const int32_t ncall = std::max(1, m.chunks);
  std::string out;
  put_i32(out, static_cast<int32_t>(m.means.size()));
  for (const auto& [name, means] : m.means) {
    if (name.empty() || name.size() > static_cast<size_t>(kMaxName))
      fail("{}: entry name '{}' too long", path, name);
    put_i32(out, static_cast<int32_t>(name.size()));
    out += name;
    put_i32(out, ncall);
    put_i32(out, static_cast<int32_t>(means.size()));
    for (float v : means) {
      const float x = v * static_cast<float>(ncall);
      char b[4];
      std::memcpy(b, &x, 4);
      out.append(b, 4);
    }
  }
  put_i32(out, m.chunks);
  put_i32(out, static_cast<int32_t>(m.dataset.size()));
  out += m.dataset;
  write_file_atomically(path, out);
}

}  // namespace mcmoe::compress
