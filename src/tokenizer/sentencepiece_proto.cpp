// SentencePiece tokenizer.model: a protobuf ModelProto, read with a minimal wire-format
// parser for the fields encoding needs (field numbers from sentencepiece_model.proto):
//   ModelProto      1 pieces (SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
//   TrainerSpec     3 model_type (default UNIGRAM), 24 treat_whitespace_as_suffix,
//                   35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix (default true),
//                   4 remove_extra_whitespaces (default true), 5 escape_whitespaces (default true)
// Everything else is skipped by wire type, so newer files with extra fields still load.
#include <fmt/format.h>

#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/internal.h"

namespace mcmoe::tokenizer::detail {

namespace {

class WireReader {
 public:
  WireReader(const std::string& path, std::string_view data, size_t base)
      : path_(path), data_(data), base_(base) {}

  bool done() const { return pos_ >= data_.size(); }

  uint64_t varint(const char* what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= data_.size()) truncated(what, 1);
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: malformed protobuf: varint for {} at byte {} is longer than 10 bytes", path_, what, offset());
  }
  std::string_view bytes(const char* what) {
    const uint64_t n = varint(what);
    if (n > data_.size() - pos_) truncated(what, n);
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint32_t fixed32(const char* what) {
    if (data_.size() - pos_ < 4) truncated(what, 4);
    uint32_t v;
    std::memcpy(&v, data_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  float float32(const char* what) {
    const uint32_t u = fixed32(what);
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  void skip(uint32_t wire_type, uint32_t field) {
    const std::string what = fmt::format("field {}", field);
    switch (wire_type) {
      case 0: varint(what.c_str()); break;
      case 1:
        if (data_.size() - pos_ < 8) truncated(what.c_str(), 8);
        pos_ += 8;
        break;
      case 2: bytes(what.c_str()); break;
      case 5: fixed32(what.c_str()); break;
      default:
        fail("{}: malformed protobuf: field {} has unsupported wire type {} at byte {}", path_, field,
             wire_type, offset());
    }
  }
  // Absolute offset in the file, for messages.
  size_t offset() const { return base_ + pos_; }
  size_t offset_of(std::string_view sub) const { return base_ + (sub.data() - data_.data()); }
  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void truncated(const char* what, uint64_t need) const {
    fail("{}: truncated protobuf: {} at byte {} needs {} bytes, {} left", path_, what, offset(), need,
         data_.size() - pos_);
  }
  const std::string& path_;
  std::string_view data_;
  size_t base_;
  size_t pos_ = 0;
};

// Walks the fields of one message; f(field, wire_type, reader) consumes or skips each.
template <typename F>
void for_each_field(WireReader& r, F&& f) {
  while (!r.done()) {
    const uint64_t tag = r.varint("field tag");
    const auto field = static_cast<uint32_t>(tag >> 3);
    const auto wt = static_cast<uint32_t>(tag & 7);
    if (field == 0) fail("{}: malformed protobuf: field number 0 at byte {}", r.path(), r.offset());
    f(field, wt, r);
  }
}

void expect_wire(const WireReader& r, uint32_t wt, uint32_t want, const char* name) {
  if (wt != want) {
    fail("{}: malformed protobuf: {} has wire type {}, expected {} (byte {})", r.path(), name, wt, want,
         r.offset());
  }
}

int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<int64_t>(v)); }

struct TrainerSpec {
  int32_t model_type = 1;  // UNIGRAM
  bool treat_whitespace_as_suffix = false;
  bool byte_fallback = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
};

struct NormalizerSpec {
  std::string name;
  std::string charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

}  // namespace

VocabData read_sentencepiece_model(const std::string& path) {
  std::ifstream in = open_regular_file(path, std::ios::binary);
  if (!in) fail("{}: cannot open the SentencePiece model", path);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.empty()) fail("{}: the SentencePiece model is empty", path);

  VocabData v;
  v.source = path;
  TrainerSpec ts;
  NormalizerSpec ns;
  WireReader top(path, data, 0);
  for_each_field(top, [&](uint32_t field, uint32_t wt, WireReader& r) {
    if (field == 1) {  // pieces
      expect_wire(r, wt, 2, "ModelProto.pieces");
      std::string_view msg = r.bytes("ModelProto.pieces");
      WireReader m(path, msg, r.offset_of(msg));
      std::string piece;
      float score = 0.0f;
      int32_t type = 1;
      for_each_field(m, [&](uint32_t f, uint32_t w, WireReader& mr) {
        if (f == 1) {
          expect_wire(mr, w, 2, "SentencePiece.piece");
          piece = mr.bytes("SentencePiece.piece");
        } else if (f == 2) {
          expect_wire(mr, w, 5, "SentencePiece.score");
          score = mr.float32("SentencePiece.score");
        } else if (f == 3) {
          expect_wire(mr, w, 0, "SentencePiece.type");
          type = as_int32(mr.varint("SentencePiece.type"));
        } else {
          mr.skip(w, f);
        }
      });
      if (piece.empty()) fail("{}: pieces[{}]: the piece string is empty", path, v.tokens.size());
      v.tokens.push_back(std::move(piece));
      v.scores.push_back(score);
      // proto2 keeps an unknown enum value out of the field, leaving the default NORMAL.
      v.types.push_back(type >= 1 && type <= 6 ? static_cast<TokenType>(type) : TokenType::Normal);
    } else if (field == 2) {  // trainer_spec
      expect_wire(r, wt, 2, "ModelProto.trainer_spec");
      std::string_view msg = r.bytes("ModelProto.trainer_spec");
      WireReader m(path, msg, r.offset_of(msg));
      for_each_field(m, [&](uint32_t f, uint32_t w, WireReader& mr) {
        const auto num = [&](const char* name) {
          expect_wire(mr, w, 0, name);
          return mr.varint(name);
        };
        switch (f) {
          case 3: ts.model_type = as_int32(num("TrainerSpec.model_type")); break;
          case 24: ts.treat_whitespace_as_suffix = num("TrainerSpec.treat_whitespace_as_suffix") != 0; break;
          case 35: ts.byte_fallback = num("TrainerSpec.byte_fallback") != 0; break;
          case 40: ts.unk_id = as_int32(num("TrainerSpec.unk_id")); break;
          case 41: ts.bos_id = as_int32(num("TrainerSpec.bos_id")); break;
          case 42: ts.eos_id = as_int32(num("TrainerSpec.eos_id")); break;
          case 43: ts.pad_id = as_int32(num("TrainerSpec.pad_id")); break;
          default: mr.skip(w, f);
        }
      });
    } else if (field == 3) {  // normalizer_spec
      expect_wire(r, wt, 2, "ModelProto.normalizer_spec");
      std::string_view msg = r.bytes("ModelProto.normalizer_spec");
      WireReader m(path, msg, r.offset_of(msg));
      for_each_field(m, [&](uint32_t f, uint32_t w, WireReader& mr) {
        const auto flag = [&](const char* name) {
          expect_wire(mr, w, 0, name);
          return mr.varint(name) != 0;
        };
        switch (f) {
          case 1:
            expect_wire(mr, w, 2, "NormalizerSpec.name");
            ns.name = mr.bytes("NormalizerSpec.name");
            break;
          case 2:
            expect_wire(mr, w, 2, "NormalizerSpec.precompiled_charsmap");
            ns.charsmap = mr.bytes("NormalizerSpec.precompiled_charsmap");
            break;
          case 3: ns.add_dummy_prefix = flag("NormalizerSpec.add_dummy_prefix"); break;
          case 4: ns.remove_extra_whitespaces = flag("NormalizerSpec.remove_extra_whitespaces"); break;
          case 5: ns.escape_whitespaces = flag("NormalizerSpec.escape_whitespaces"); break;
          default: mr.skip(w, f);
        }
      });
    } else {
      r.skip(wt, field);
    }
  });

  if (v.tokens.empty()) fail("{}: ModelProto.pieces is empty: not a SentencePiece model", path);
  if (ts.model_type != 2) {
    fail("{}: trainer_spec.model_type = {} ({}): only BPE (2) SentencePiece models are supported", path,
         ts.model_type, ts.model_type == 1 ? "UNIGRAM" : ts.model_type == 3 ? "WORD" : ts.model_type == 4 ? "CHAR" : "unknown");
  }
  if (ts.treat_whitespace_as_suffix) fail("{}: trainer_spec.treat_whitespace_as_suffix = true is not supported", path);
  if (!ns.escape_whitespaces) fail("{}: normalizer_spec.escape_whitespaces = false is not supported", path);

  const auto n = static_cast<int64_t>(v.tokens.size());
  int n_unknown = 0, n_bytes = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (v.types[i] == TokenType::Unknown) {
      v.unk_id = static_cast<int32_t>(i);
      ++n_unknown;
    }
    n_bytes += v.types[i] == TokenType::Byte;
  }
  if (n_unknown != 1) fail("{}: the model has {} pieces of type UNKNOWN, expected exactly 1", path, n_unknown);
  if (ts.byte_fallback && n_bytes != 256) {
    fail("{}: trainer_spec.byte_fallback is true but the model has {} byte pieces, expected 256", path, n_bytes);
  }
  if (!ts.byte_fallback && n_bytes != 0) {
    fail("{}: the model has {} byte pieces although trainer_spec.byte_fallback is false", path, n_bytes);
  }
  const auto special = [&](int32_t id, const char* key) -> int32_t {
    if (id < -1 || id >= n) fail("{}: trainer_spec.{} = {} is out of range: the model has {} pieces", path, key, id, n);
    return id;
  };
  v.bos_id = special(ts.bos_id, "bos_id");
  v.eos_id = special(ts.eos_id, "eos_id");
  v.pad_id = special(ts.pad_id, "pad_id");

  v.model = "llama";
  v.pre = "default";
  v.add_bos = v.bos_id >= 0;  // LlamaTokenizer's default; tokenizer_config.json may override
  v.add_eos = false;
  v.add_space_prefix = ns.add_dummy_prefix;
  v.sp_exact = true;
  v.remove_extra_whitespaces = ns.remove_extra_whitespaces;
  v.precompiled_charsmap = std::move(ns.charsmap);
  return v;
}

}  // namespace mcmoe::tokenizer::detail
