#pragma once
// One description per model family (model/arch/NAME.cpp): its Hugging Face model_type(s)
// and GGUF architecture name, how its config keys (config.json and GGUF metadata) set
// ModelConfig's switches, how ModelConfig is written back as GGUF metadata, and where a
// Hugging Face checkpoint keeps each tensor of the inventory (model/inventory.h). Keys and
// tensors every family shares (hidden size, layer count, RoPE base, ...) are read by
// model/config.cpp and the loaders; an arch file holds only what is its own. Adding a family
// is one such file, one line in arch/registry.cpp, and any new op it needs.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/json_read.h"
#include "model/config.h"
#include "model/inventory.h"

namespace mcmoe::format {
class GgufFile;
class GgufWriter;
}  // namespace mcmoe::format

namespace mcmoe::model::arch {

// config.json with typed getters that name the file and the key in their errors.
class HfConfig {
 public:
  HfConfig(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return j_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  template <typename T>
  T get(const std::string& key) const {
    if (!has(key)) fail("{}: missing key '{}'", path_, key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      // A number is range-checked (the JSON library's cast would be undefined beyond T's
      // range); anything else is the type error below.
      if (j_[key].is_number()) return json_int<T>(j_[key], fmt::format("{}: key '{}'", path_, key));
    }
    try {
      return j_[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      fail("{}: key '{}' has the wrong type (found {})", path_, key, j_[key].type_name());
    }
  }
  template <typename T>
  T get(const std::string& key, T def) const {
    return has(key) ? get<T>(key) : def;
  }
  // Fails naming the key when it is present with a value other than `expected`.
  template <typename T>
  void expect(const std::string& key, T expected, const char* why) const {
    if (has(key) && get<T>(key) != expected) {
      fail("{}: {} = {} is not supported ({}; expected {})", path_, key, j_[key].dump(), why,
           nlohmann::json(expected).dump());
    }
  }

 private:
  nlohmann::json j_;
  std::string path_;
};

// GGUF metadata of one architecture: keys are given without the "{arch}." prefix.
class GgufKeys {
 public:
  GgufKeys(const format::GgufFile& f, std::string arch) : f_(f), p_(std::move(arch) + ".") {}
  const format::GgufFile& file() const { return f_; }
  const std::string& path() const;
  bool has(const std::string& key) const;
  int u32(const std::string& key) const;           // required
  int u32(const std::string& key, int def) const;  // optional
  float f32(const std::string& key, float def) const;
  float f32(const std::string& key) const;
  bool flag(const std::string& key, bool def) const;
  std::string str(const std::string& key, const std::string& def) const;
  bool has_tensor(const std::string& name) const;

 private:
  const format::GgufFile& f_;
  std::string p_;
};

// Writes "{arch}." keys.
class GgufKeyWriter {
 public:
  GgufKeyWriter(format::GgufWriter& g, std::string arch) : g_(g), p_(std::move(arch) + ".") {}
  void u32(const std::string& key, int v);
  void f32(const std::string& key, float v);
  void flag(const std::string& key, bool v);
  void str(const std::string& key, const std::string& v);
  void unprefixed_str(const std::string& key, const std::string& v);  // a key outside "{arch}."
  void unprefixed_f32(const std::string& key, float v);

 private:
  format::GgufWriter& g_;
  std::string p_;
};

// mcmoe's keys for YaRN settings llama.cpp's files do not record: the rope's magnitude
// factor when it differs from what the family implies, and truncate (false for gpt-oss).
inline constexpr const char* kRopeAttnFactorKey = "mcmoe.rope.attn_factor";
inline constexpr const char* kRopeTruncateKey = "mcmoe.rope.yarn_truncate";

// Where a Hugging Face checkpoint keeps one tensor of the inventory, and how to take it.
struct HfSource {
  enum class Take {
    Whole,       // the tensor as it is
    Slice,       // sub-tensor `index` of a stacked [E, ...] tensor
    Rows,        // rows [begin, end) of sub-tensor `index` of a stacked [E, rows, cols] tensor
    Transposed,  // sub-tensor `index` of a stacked [E, a, b] tensor, transposed to [b, a]
    // gpt-oss's fused gate_up_proj [E, n_embd, 2 n_ff] used as x @ W, gate in the even
    // columns and up in the odd ones: columns begin, begin + 2, ... of sub-tensor `index`,
    // transposed to [n_ff, n_embd]; for its bias [E, 2 n_ff], entries begin, begin + 2, ...
    EveryOther,
  };
  std::string name;  // empty: the checkpoint has no such tensor (the slot is absent there)
  Take take = Take::Whole;
  int64_t index = 0, begin = 0, end = 0;
};

struct ArchInfo {
  Arch arch;
  const char* gguf_name;
  std::vector<std::string> hf_model_types;
  // Family keys of config.json, after the common ones (config.cpp) are read.
  void (*from_hf)(const HfConfig& j, const std::string& model_type, ModelConfig& c);
  // Family keys of GGUF metadata, after the common ones.
  void (*from_gguf)(const GgufKeys& k, ModelConfig& c);
  // Family keys written to GGUF, after the common ones (model_writer.cpp).
  void (*to_gguf)(const ModelConfig& c, GgufKeyWriter& w);
  // Hugging Face name of a tensor slot.
  HfSource (*hf_source)(const ModelConfig& c, const TensorSlot& s);
  // The GGUF name of a tensor where the family departs from model/inventory.h's (GLM-4.5
  // and gpt-oss call the FFN norm post_attention_norm); null: no departures.
  std::string (*gguf_tensor_name)(const TensorSlot& s) = nullptr;
  // llama.cpp stores this family's q/k rows permuted for pair-interleaved RoPE
  // ("llama", "granitemoe"): a Hugging Face (NeoX) checkpoint is permuted on export.
  bool gguf_interleaved_rope = false;
};

const ArchInfo& info(Arch a);
const ArchInfo* find_by_gguf_name(std::string_view name);
const ArchInfo* find_by_hf_type(std::string_view model_type);
std::string known_gguf_names();  // "llama, qwen2moe, ..." for error messages
std::string known_hf_types();

// The Hugging Face names Llama-style checkpoints share ("model.layers.N.self_attn.q_proj.weight",
// "mlp.experts.E.gate_proj.weight", ...); families start from it and override what differs.
HfSource llama_style_source(const ModelConfig& c, const TensorSlot& s);
std::string hf_layer(int l, const std::string& suffix);  // "model.layers.{l}." + suffix

// Qwen-MoE's layer options no released model uses (decoder_sparse_step, mlp_only_layers,
// use_sliding_window): refused with the key's name rather than run wrong.
void refuse_qwen_layer_options(const HfConfig& j);

// GLM-4.5's and gpt-oss's GGUF name of the FFN norm, blk.N.post_attention_norm.weight (an
// ArchInfo::gguf_tensor_name).
std::string post_attention_norm_names(const TensorSlot& s);

// YaRN from a Hugging Face rope_scaling object (type or rope_type "yarn"); other types fail,
// naming the file. mscale/mscale_all_dim set the rope's attention factor as
// _compute_yarn_parameters does.
void read_hf_rope_scaling(const HfConfig& j, ModelConfig& c);

}  // namespace mcmoe::model::arch
