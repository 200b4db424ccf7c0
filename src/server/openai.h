#pragma once
// OpenAI's request and response shapes for /v1/chat/completions and /v1/completions:
// request bodies checked field by field into a generation request (a wrong field is an
// ApiError naming it, HTTP 400), and the JSON of responses, stream chunks and errors.
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "api/batcher.h"
#include "api/tool_calls.h"
#include "model/chat_template.h"
#include "model/model.h"

namespace mcmoe::server {

// An error the client made or a refusal, as OpenAI reports it: {"error": {message, type,
// param, code}} with an HTTP status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(message),
        status(status),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string param, code;
};

// {"error": {...}}; type from the status (invalid_request_error, authentication_error, ...).
nlohmann::json error_json(int status, const std::string& message, const std::string& param = {},
                          const std::string& code = {});

// What a request needs from the model: its tokenizer, chat template and context.
struct ModelContext {
  const model::Model* model = nullptr;
  model::ChatTemplate chat_template;
  int n_ctx = 0;
  std::string name;  // the id /v1/models reports
};

struct CompletionRequest {
  api::GenerationRequest gen;
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string prompt_text;     // the rendered prompt (chat) or the prompt
  // Names of the request's tools: the reply is searched for calls to them (api/tool_calls.h)
  // unless tool_choice is "none". Empty: no tools.
  std::vector<std::string> tool_names;
};

// Parses and checks a request body (JSON text); throws ApiError.
CompletionRequest parse_chat_request(const std::string& body, const ModelContext& ctx);
CompletionRequest parse_completion_request(const std::string& body, const ModelContext& ctx);
// POST /apply-template: the rendered prompt of {messages, tools?, add_generation_prompt?}.
std::string apply_template_request(const std::string& body, const ModelContext& ctx);
// The body parsed as a JSON object, or ApiError 400 saying what is wrong with it.
nlohmann::json parse_body(const std::string& body);

// Response objects. id: "chatcmpl-…" / "cmpl-…"; created: Unix seconds.
struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
  bool chat = false;
};
nlohmann::json completion_json(const ResponseMeta& m, const std::string& text,
                               const char* finish_reason, int64_t prompt_tokens,
                               int64_t completion_tokens);
// One stream chunk: text (and, for chat, the role on the first), or the finish reason.
nlohmann::json chunk_json(const ResponseMeta& m, const std::string& text, const char* finish_reason,
                          bool first);
// The tool calls of a reply to a request with tools: only calls to tools the request named
// count; none (or any unknown name) leaves the reply as text.
std::vector<api::ToolCall> tool_calls_of(const std::vector<std::string>& tool_names,
                                         const std::string& text, std::string* content);
// OpenAI's tool_calls list: [{index, id, type: "function", function: {name, arguments}}].
nlohmann::json tool_calls_json(const std::vector<api::ToolCall>& calls);
nlohmann::json usage_chunk_json(const ResponseMeta& m, int64_t prompt_tokens,
                                int64_t completion_tokens);
// A fresh identifier: PREFIX SEPARATOR 16 random hex digits ("chatcmpl-…", "call_…").
std::string new_id(const char* prefix, char separator = '-');
// One Prometheus metric (HELP, TYPE and value lines) appended to out, named mcmoe_NAME.
void prometheus_metric(std::string& out, const char* name, const char* type, const char* help,
                       double value);
// Generated text need not be valid UTF-8 (byte tokens): JSON gets U+FFFD for those bytes.
std::string dump(const nlohmann::json& j);

}  // namespace mcmoe::server
