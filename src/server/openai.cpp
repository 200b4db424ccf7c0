#include "server/openai.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>

#include "api/generate.h"
#include "core/error.h"
#include "core/json_read.h"

namespace mcmoe::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

const char* error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
    case 503:
      return "server_overloaded";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, param);
}

// Optional fields, checked: absent or null gives the default.
bool has(const json& j, const char* key) {
  return j.contains(key) && !j[key].is_null();
}

int64_t int_field(const json& j, const char* key, int64_t lo, int64_t hi, int64_t def) {
  if (!has(j, key)) return def;
  const json& v = j[key];
  if (!v.is_number() || (v.is_number_float() && (!std::isfinite(v.get<double>()) ||
                                                 v.get<double>() != std::floor(v.get<double>())))) {
    bad(key, fmt::format("'{}' must be an integer, got {}", key, shown(v)));
  }
  const std::optional<int64_t> x = json_integer<int64_t>(v);  // nullopt: beyond int64
  if (!x || *x < lo || *x > hi) {
    bad(key, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, shown(v)));
  }
  return *x;
}

double number_field(const json& j, const char* key, double lo, double hi, double def) {
  if (!has(j, key)) return def;
  const json& v = j[key];
  if (!v.is_number()) bad(key, fmt::format("'{}' must be a number, got {}", key, shown(v)));
  const double d = v.get<double>();
  if (!(d >= lo && d <= hi))
    bad(key, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, shown(v)));
  return d;
}

bool bool_field(const json& j, const char* key, bool def) {
  if (!has(j, key)) return def;
  if (!j[key].is_boolean())
    bad(key, fmt::format("'{}' must be true or false, got {}", key, shown(j[key])));
  return j[key].get<bool>();
}

// The fields both endpoints share: sampling, limits, stop strings, streaming.
void common_fields(const json& j, const ModelContext& ctx, CompletionRequest& r) {
  if (has(j, "model") && !j["model"].is_string())
    bad("model", fmt::format("'model' must be a string, got {}", shown(j["model"])));
  if (int_field(j, "n", 1, 1, 1) != 1) bad("n", "only n = 1 is supported");
  if (has(j, "logprobs") && j["logprobs"] != false && j["logprobs"] != 0)
    bad("logprobs", "logprobs are not supported");
  api::SamplerParams& sp = r.gen.sampling;
  sp.temperature = static_cast<float>(number_field(j, "temperature", 0, 2, 0.8));
  sp.top_p = static_cast<float>(number_field(j, "top_p", 0, 1, 0.95));
  sp.top_k = static_cast<int>(int_field(j, "top_k", 0, 1 << 24, 40));
  sp.seed = static_cast<uint64_t>(int_field(j, "seed", std::numeric_limits<int64_t>::min(),
                                            std::numeric_limits<int64_t>::max(),
                                            static_cast<int64_t>(std::random_device{}())));
  const char* limit_key = has(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (has(j, limit_key)) {
    const json& v = j[limit_key];
    if (v.is_number_integer() && v.get<double>() > ctx.n_ctx) {
      throw ApiError(
          400,
          fmt::format(
              "'{}' is {}; this server's context holds {} tokens per sequence (prompt and reply "
              "together)",
              limit_key, shown(v), ctx.n_ctx),
          limit_key, "context_length_exceeded");
    }
  }
  r.gen.max_tokens = static_cast<int>(int_field(j, limit_key, 1, ctx.n_ctx, ctx.n_ctx));
  if (has(j, "stop")) {
    const json& s = j["stop"];
    if (s.is_string()) {
      r.gen.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 16) {
      for (const json& e : s) {
        if (!e.is_string())
          bad("stop", fmt::format("'stop' entries must be strings, got {}", shown(e)));
        r.gen.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("stop",
          fmt::format("'stop' must be a string or a list of at most 16 strings, got {}", shown(s)));
    }
  }
  r.stream = bool_field(j, "stream", false);
  r.gen.ignore_eos = bool_field(j, "ignore_eos", false);  // llama-server's extension
  if (has(j, "stream_options")) {
    const json& so = j["stream_options"];
    if (!so.is_object())
      bad("stream_options", fmt::format("'stream_options' must be an object, got {}", shown(so)));
    r.include_usage = bool_field(so, "include_usage", false);
  }
}

void check_prompt_fits(const CompletionRequest& r, const ModelContext& ctx) {
  const int64_t n = static_cast<int64_t>(r.gen.prompt.size());
  if (n >= ctx.n_ctx) {
    throw ApiError(
        400,
        fmt::format(
            "the prompt has {} tokens; this server's context holds {} per sequence (prompt and "
            "reply together)",
            n, ctx.n_ctx),
        r.chat ? "messages" : "prompt", "context_length_exceeded");
  }
}

// Message content: a string, null, or OpenAI's list of parts ({"type": "text", "text": ...}),
// whose text parts are joined for the template.
ojson normalise_messages(const json& msgs) {
  if (!msgs.is_array() || msgs.empty())
    bad("messages", "'messages' must be a non-empty list of {role, content}");
  ojson out = ojson::array();
  for (size_t i = 0; i < msgs.size(); ++i) {
    const json& m = msgs[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(where, fmt::format("'{}' must be an object, got {}", where, shown(m)));
    if (!m.contains("role") || !m["role"].is_string())
      bad(where + ".role", fmt::format("'{}.role' must be a string", where));
    ojson o = ojson::parse(m.dump());
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const json& part : m["content"]) {
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
          bad(where + ".content",
              fmt::format("'{}.content' parts must be objects with a type", where));
        }
        if (part["type"] != "text") {
          bad(where + ".content",
              fmt::format("'{}.content': only text parts are supported, got type {}", where,
                          shown(part["type"])));
        }
        if (!part.contains("text") || !part["text"].is_string()) {
          bad(where + ".content",
              fmt::format("'{}.content': a text part needs a string 'text'", where));
        }
        text += part["text"].get<std::string>();
      }
      o["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      bad(where + ".content",
          fmt::format("'{}.content' must be a string, a list of parts or null, got {}", where,
                      shown(m["content"])));
    } else if (!m.contains("content") && !m.contains("tool_calls")) {
      bad(where + ".content", fmt::format("'{}' has no content", where));
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::string render(const json& j, const ModelContext& ctx, bool add_generation_prompt) {
  const ojson messages = normalise_messages(j.contains("messages") ? j["messages"] : json());
  ojson tools = nullptr;
  if (has(j, "tools")) {
    if (!j["tools"].is_array())
      bad("tools", fmt::format("'tools' must be a list, got {}", shown(j["tools"])));
    tools = ojson::parse(j["tools"].dump());
  }
  ojson extra = ojson::object();
  if (has(j, "chat_template_kwargs")) {
    if (!j["chat_template_kwargs"].is_object())
      bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    extra = ojson::parse(j["chat_template_kwargs"].dump());
  }
  try {
    return model::render_chat(ctx.chat_template, messages, tools, add_generation_prompt, extra);
  } catch (const Error& e) {
    // The template refused the conversation (raise_exception) or failed on it.
    throw ApiError(400, e.what(), "messages");
  }
}

}  // namespace

json error_json(int status, const std::string& message, const std::string& param,
                const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", error_type(status)},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = parse_json(body);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object())
    throw ApiError(400, fmt::format("the body must be a JSON object, got {}", j.type_name()));
  return j;
}

CompletionRequest parse_chat_request(const std::string& body, const ModelContext& ctx) {
  const json j = parse_body(body);
  CompletionRequest r;
  r.chat = true;
  common_fields(j, ctx, r);
  r.prompt_text = render(j, ctx, true);
  r.gen.prompt = api::prompt_tokens(ctx.model->tokenizer(), r.prompt_text, true);
  check_prompt_fits(r, ctx);
  const bool choice_none = has(j, "tool_choice") && j["tool_choice"] == "none";
  if (has(j, "tools") && !choice_none) {
    for (const json& t : j["tools"]) {
      if (t.is_object() && t.contains("function") && t["function"].is_object() &&
          t["function"].contains("name") && t["function"]["name"].is_string()) {
        r.tool_names.push_back(t["function"]["name"].get<std::string>());
      }
    }
    // Some families mark calls with control tokens ([TOOL_CALLS], Kimi's and DeepSeek's
    // markers): keep their text so the calls can be found.
    r.gen.keep_tool_markers = !r.tool_names.empty();
  }
  return r;
}

std::vector<api::ToolCall> tool_calls_of(const std::vector<std::string>& tool_names,
                                         const std::string& text, std::string* content) {
  *content = text;
  if (tool_names.empty()) return {};
  api::ParsedReply p = api::parse_tool_calls(text);
  for (const api::ToolCall& c : p.calls) {
    if (std::find(tool_names.begin(), tool_names.end(), c.name) == tool_names.end()) return {};
  }
  if (!p.calls.empty()) *content = p.content;
  return p.calls;
}

std::string new_id(const char* prefix, char separator) {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex mu;
  std::lock_guard lock(mu);
  return fmt::format("{}{}{:016x}", prefix, separator, rng());
}

void prometheus_metric(std::string& out, const char* name, const char* type, const char* help,
                       double value) {
  out += fmt::format("# HELP mcmoe_{0} {1}\n# TYPE mcmoe_{0} {2}\nmcmoe_{0} {3}\n", name, help,
                     type, value);
}

json tool_calls_json(const std::vector<api::ToolCall>& calls) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    out.push_back({{"index", i},
                   {"id", new_id("call", '_')},
                   {"type", "function"},
                   {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
  }
  return out;
}

CompletionRequest parse_completion_request(const std::string& body, const ModelContext& ctx) {
  const json j = parse_body(body);
  CompletionRequest r;
  common_fields(j, ctx, r);
  if (!j.contains("prompt")) bad("prompt", "'prompt' is required");
  const json& p = j["prompt"];
  if (p.is_string() || (p.is_array() && p.size() == 1 && p[0].is_string())) {
    r.prompt_text = p.is_string() ? p.get<std::string>() : p[0].get<std::string>();
    r.gen.prompt = api::prompt_tokens(ctx.model->tokenizer(), r.prompt_text, true);
  } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
    const int64_t V = ctx.model->tokenizer().n_vocab();
    for (const json& t : p) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= V) {
        bad("prompt",
            fmt::format("token ids in 'prompt' must be integers in [0, {}), got {}", V, shown(t)));
      }
      r.gen.prompt.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  } else {
    bad("prompt",
        fmt::format(
            "'prompt' must be a string, a list of one string or a list of token ids, got {}",
            shown(p)));
  }
  if (r.gen.prompt.empty()) bad("prompt", "the prompt is empty");
  check_prompt_fits(r, ctx);
  return r;
}

std::string apply_template_request(const std::string& body, const ModelContext& ctx) {
  const json j = parse_body(body);
  return render(j, ctx, bool_field(j, "add_generation_prompt", true));
}

namespace {

// The fields every response object and chunk shares.
json envelope(const ResponseMeta& m, bool chunk, json choices) {
  return {{"id", m.id},
          {"object", !m.chat ? "text_completion"
                     : chunk ? "chat.completion.chunk"
                             : "chat.completion"},
          {"created", m.created},
          {"model", m.model},
          {"choices", std::move(choices)}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

}  // namespace

json completion_json(const ResponseMeta& m, const std::string& text, const char* finish_reason,
                     int64_t prompt_tokens, int64_t completion_tokens) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}, {"logprobs", nullptr}};
  if (m.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  json j = envelope(m, false, json::array({choice}));
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

json chunk_json(const ResponseMeta& m, const std::string& text, const char* finish_reason,
                bool first) {
  json choice = {{"index", 0},
                 {"logprobs", nullptr},
                 {"finish_reason", finish_reason ? json(finish_reason) : json(nullptr)}};
  if (m.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && !finish_reason)) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return envelope(m, true, json::array({choice}));
}

json usage_chunk_json(const ResponseMeta& m, int64_t prompt_tokens, int64_t completion_tokens) {
  json j = envelope(m, true, json::array());
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace mcmoe::server
