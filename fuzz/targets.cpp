#include "targets.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "compress/stats.h"
#include "core/error.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "model/chat_template.h"
#include "model/config.h"
#include "model/model.h"
#include "offload/cache_sim.h"
#include "offload/trace.h"
#include "server/openai.h"
#include "template/jinja.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::fuzz {
namespace {

namespace fs = std::filesystem;
using Input = std::span<const uint8_t>;

// A directory private to this process, removed when the process exits normally (an object
// whose destructor removes it: an atexit handler would run after the path was destroyed).
const fs::path& scratch_dir() {
  struct Scratch {
    fs::path path = fs::path("/dev/shm") / ("mcmoe-fuzz-" + std::to_string(::getpid()));
    Scratch() { fs::create_directories(path); }
    ~Scratch() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Scratch dir;
  return dir.path;
}

// Writes `data` to scratch_dir()/name and returns the path.
std::string write_scratch(const std::string& name, std::string_view data) {
  const fs::path path = scratch_dir() / name;
  fs::create_directories(path.parent_path());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size())) {
    std::perror(path.c_str());
    std::abort();
  }
  std::fclose(f);
  return path.string();
}

std::string_view text_of(Input in) {
  return {reinterpret_cast<const char*>(in.data()), in.size()};
}

// Text that reaches byte fallback, merges, Unicode pre-tokenisation and control tokens.
constexpr std::string_view kText =
    "Hello, world!  It's 2026: ünïcödé, Привет мир, 中文 \t\n<s></s><|im_start|>user "
    "<0x41>\xff\xfe 12345 ...";

// A tokenizer used as run and serve use it: encode with and without special tokens, decode
// the ids back, and every token's piece.
void exercise(const tokenizer::Tokenizer& tok) {
  (void)tok.decode(tok.encode(kText));
  (void)tok.decode(tok.encode_with_special(kText));
  const int32_t n = std::min<int32_t>(tok.n_vocab(), 4096);
  for (int32_t id = 0; id < n; ++id) (void)tok.token_to_piece(id);
}

// The GGUF reader (header, metadata, tensor infos) and the model load that follows: the
// configuration, tensor inventory, vocabulary, reduce and low-rank metadata (mcmoe.reduce.*,
// mcmoe.lowrank.*) and the weights' block checks, on a mapped file.
void gguf(Input in) {
  const std::string path = write_scratch("input.gguf", text_of(in));
  model::LoadOptions o;
  o.memory = model::LoadOptions::Memory::kMap;
  (void)model::Model::load(path, o);
}

// A GGUF vocabulary (tokenizer.ggml.*): the tokenizer built from it, then used.
void gguf_vocab(Input in) {
  const std::string path = write_scratch("vocab.gguf", text_of(in));
  const format::GgufFile f(path);
  exercise(*tokenizer::Tokenizer::from_gguf(f));
}

// Reads a tensor's first and last byte: a range the reader let past its checks faults here.
void touch(const TensorView& v) {
  if (v.nbytes == 0) return;
  const auto* p = static_cast<const volatile uint8_t*>(v.data);
  (void)(p[0] + p[v.nbytes - 1]);
}

// A valid safetensors shard holding one F32 tensor `name` of shape [2].
std::string valid_shard(const std::string& name) {
  std::string header = R"({"__metadata__":{"format":"pt"},")" + name +
                       R"(":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  while (header.size() % 8) header += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + std::string(8, '\0');
}

// Safetensors: the first byte picks one file (even: the rest is a .safetensors file) or a
// sharded set (odd: the rest is model.safetensors.index.json over two small valid shards).
void safetensors(Input in) {
  if (in.empty()) return;
  if (!(in[0] & 1)) {
    const format::SafetensorsFile f(write_scratch("model.safetensors", text_of(in.subspan(1))));
    for (const auto& [name, view] : f.tensors()) touch(view);
    return;
  }
  write_scratch("set/model-00001-of-00002.safetensors", valid_shard("a.weight"));
  write_scratch("set/model-00002-of-00002.safetensors", valid_shard("b.weight"));
  write_scratch("set/model.safetensors.index.json", text_of(in.subspan(1)));
  const format::SafetensorsSet set((scratch_dir() / "set").string());
  for (const auto& name : set.names()) touch(set.get(name));
}

// A Hugging Face config.json, read as the loader reads it (every family's keys, their types
// and the sanity checks on sizes).
void config_json(Input in) {
  write_scratch("config/config.json", text_of(in));
  (void)model::config_from_hf((scratch_dir() / "config").string());
}

// tokenizer.json or tokenizer.model as the only tokenizer file of a Hugging Face directory.
// A vocabulary that asks for BOS without naming one anywhere is refused before it is used;
// the tokenizer_config.json written beside it turns BOS off so that encoding is reached for
// every file that parses.
void hf_tokenizer(const char* file_name, Input in) {
  const fs::path dir = scratch_dir() / (std::string("tok-") + file_name);
  write_scratch(fs::path(dir.filename()) / file_name, text_of(in));
  write_scratch(fs::path(dir.filename()) / "tokenizer_config.json",
                R"({"add_bos_token": false, "add_eos_token": false})");
  exercise(*tokenizer::Tokenizer::from_hf_dir(dir.string()));
}

// The calibration statistics file that quantize --stats, reduce and lowrank read (JSON).
void stats(Input in) {
  (void)compress::load_stats(write_scratch("stats.json", text_of(in)));
}

// A routing trace (`mcmoe trace`), replayed as `mcmoe cachesim` does: LRU with prefetch,
// LFU and Belady at half the experts' bytes, and the predictions' quality.
void trace(Input in) {
  const auto t = offload::read_trace(write_scratch("trace.txt", text_of(in)));
  uint64_t total = 0;
  for (uint64_t b : t.expert_bytes) total += b / 2;
  for (const char* policy : {"lru", "lfu", "belady"}) {
    offload::SimOptions o;
    o.policy = policy;
    o.budget = total;
    o.prefetch_depth = t.depth > 0 ? 1 : 0;
    (void)offload::simulate(t, o);
  }
  if (t.depth > 0) (void)offload::prediction_quality(t, 1, 2);
}

// Chat templates: Jinja source parsed and rendered with a conversation that has a system
// prompt, tools, a tool call and its result, as serve renders them.
void chat_template(Input in) {
  static const jinja::Value context = jinja::Value::from_json(nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "Weather in Paris? Привет"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "{\"t\": 21}"},
      {"role": "assistant", "content": "21 C.", "reasoning_content": "look it up"},
      {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
      "required": ["city"]}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
    "enable_thinking": false
  })"));
  const jinja::Template t(std::string(text_of(in)), "fuzz template");
  jinja::Template::Options o;
  o.now = 1'700'000'000;  // deterministic strftime_now
  o.max_output = size_t{1} << 20;
  o.max_steps = 100'000;  // real templates take a few thousand; keeps each input fast
  (void)t.render(context, o);
}

// What mcmoe serve does with a request body: the first byte picks /v1/chat/completions,
// /v1/completions or /apply-template; parsed and checked against a real tiny model's
// tokenizer and chat template (MCMOE_FUZZ_MODEL, else models/mixtral-tiny-q4_0.gguf).
// ApiError with a 4xx status (the reply a client gets) is a refusal like Error.
const server::ModelContext& http_context() {
  static std::unique_ptr<model::Model> model;
  static const server::ModelContext ctx = [] {
    const char* env = std::getenv("MCMOE_FUZZ_MODEL");
    model = model::Model::load(env ? env : MCMOE_SOURCE_DIR "/models/mixtral-tiny-q4_0.gguf");
    server::ModelContext c;
    c.model = model.get();
    c.chat_template = model::chat_template_of(*model);
    c.n_ctx = 256;
    c.name = "fuzz";
    return c;
  }();
  return ctx;
}

void http_request(Input in) {
  const server::ModelContext& ctx = http_context();
  if (in.empty()) return;
  const std::string body(text_of(in.subspan(1)));
  try {
    switch (in[0] % 3) {
      case 0:
        (void)server::parse_chat_request(body, ctx);
        break;
      case 1:
        (void)server::parse_completion_request(body, ctx);
        break;
      default:
        (void)server::apply_template_request(body, ctx);
        break;
    }
  } catch (const server::ApiError& e) {
    if (e.status < 400 || e.status > 499) throw;
    throw Error(e.what());
  }
}

const std::map<std::string, std::function<void(Input)>>& targets() {
  static const std::map<std::string, std::function<void(Input)>> t = {
      {"gguf", gguf},
      {"gguf_vocab", gguf_vocab},
      {"safetensors", safetensors},
      {"config_json", config_json},
      {"tokenizer_json", [](Input in) { hf_tokenizer("tokenizer.json", in); }},
      {"tokenizer_model", [](Input in) { hf_tokenizer("tokenizer.model", in); }},
      {"stats", stats},
      {"trace", trace},
      {"template", chat_template},
      {"http_request", http_request},
  };
  return t;
}

}  // namespace

const std::vector<std::string>& target_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [name, f] : targets()) n.push_back(name);
    return n;
  }();
  return names;
}

void prepare_target(const std::string& name) {
  if (name == "http_request") http_context();
}

Outcome run_target(const std::string& name, std::span<const uint8_t> input, std::string* error) {
  const auto it = targets().find(name);
  if (it == targets().end()) fail("fuzz: no target named '{}'", name);
  try {
    it->second(input);
    return Outcome::kAccepted;
  } catch (const Error& e) {
    if (error) *error = e.what();
    return Outcome::kRefused;
  }
}

}  // namespace mcmoe::fuzz
