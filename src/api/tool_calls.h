#pragma once
// Tool calls in a model's reply, in the formats chat templates teach the model (each checked
// against what the family's template renders for an assistant message with tool_calls):
//   Hermes / Qwen2.5 / Qwen3:  <tool_call>{"name": N, "arguments": {...}}</tool_call>
//   GLM-4.5: <tool_call>N<arg_key>k</arg_key><arg_value>v</arg_value>...</tool_call> Mistral:
//   [TOOL_CALLS][{"name": N, "arguments": {...}}, ...] Llama 3.1 / 3.2 / 3.3:     the whole reply
//   one {"name": N, "parameters": {...}} object Kimi-K2:
//   <|tool_call_begin|>functions.N:0<|tool_call_argument_begin|>{...}<|tool_call_end|>
//   DeepSeek-V3.1:             <｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}<｜tool▁call▁end｜>
// A call whose arguments are not valid JSON is left in the text.
#include <string>
#include <string_view>
#include <vector>

namespace mcmoe::api {

struct ToolCall {
  std::string name;
  std::string arguments;  // a JSON object, as text (OpenAI's function.arguments)
};

struct ParsedReply {
  std::string content;  // the reply without its tool calls (trimmed)
  std::vector<ToolCall> calls;
};

ParsedReply parse_tool_calls(const std::string& reply);

// The markers above that vocabularies store as control tokens (dropped from text otherwise):
// a generation asked for tool calls keeps them.
bool is_tool_call_marker(std::string_view token_text);

}  // namespace mcmoe::api
