#include "api/tool_calls.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "core/json_read.h"

namespace mcmoe::api {

namespace {

using json = nlohmann::json;

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::optional<json> try_parse_json(const std::string& s) {
  try {
    return mcmoe::parse_json(s);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// {"name": N, "arguments" | "parameters": {...}} → a call.
std::optional<ToolCall> call_from_object(const json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  const char* key = j.contains("arguments")    ? "arguments"
                    : j.contains("parameters") ? "parameters"
                                               : nullptr;
  if (!key) return std::nullopt;  // {"name": ...} alone is data, not a call
  json args = j[key];
  if (args.is_string()) {  // arguments already serialised
    const auto parsed = try_parse_json(args.get<std::string>());
    if (!parsed || !parsed->is_object()) return std::nullopt;
    args = *parsed;
  }
  if (!args.is_object()) return std::nullopt;
  return ToolCall{j["name"].get<std::string>(), args.dump()};
}

// Every open ... close span: the calls found in them, the rest of the text as content.
template <typename ParseBody>
bool spans(const std::string& text, const std::string& open, const std::string& close,
           ParseBody&& parse, ParsedReply& out) {
  size_t pos = 0;
  std::string rest;
  std::vector<ToolCall> calls;
  while (true) {
    const size_t b = text.find(open, pos);
    if (b == std::string::npos) break;
    const size_t e = text.find(close, b + open.size());
    if (e == std::string::npos) break;
    const std::optional<ToolCall> c = parse(text.substr(b + open.size(), e - b - open.size()));
    if (!c) return false;  // a malformed call: leave the text alone
    rest += text.substr(pos, b - pos);
    calls.push_back(*c);
    pos = e + close.size();
  }
  if (calls.empty()) return false;
  rest += text.substr(pos);
  out.calls = std::move(calls);
  out.content = rest;
  return true;
}

// GLM-4.5: N<arg_key>k</arg_key><arg_value>v</arg_value>...; a value that parses as JSON
// (number, object, ...) keeps its type, anything else is a string.
std::optional<ToolCall> glm_call(const std::string& body) {
  const size_t first = body.find("<arg_key>");
  ToolCall c{trim(body.substr(0, first)), "{}"};
  if (c.name.empty() || c.name.find_first_of("{<\n") != std::string::npos) return std::nullopt;
  json args = json::object();
  size_t pos = first;
  while (pos != std::string::npos) {
    const size_t ke = body.find("</arg_key>", pos);
    const size_t vb = body.find("<arg_value>", ke);
    const size_t ve = body.find("</arg_value>", vb);
    if (ke == std::string::npos || vb == std::string::npos || ve == std::string::npos)
      return std::nullopt;
    const std::string key = body.substr(pos + 9, ke - pos - 9);
    const std::string value = body.substr(vb + 11, ve - vb - 11);
    const auto parsed = try_parse_json(value);
    args[key] = parsed && !parsed->is_string() ? *parsed : json(value);
    pos = body.find("<arg_key>", ve);
  }
  c.arguments = args.dump();
  return c;
}

}  // namespace

bool is_tool_call_marker(std::string_view t) {
  static constexpr std::string_view kMarkers[] = {"<tool_call>",
                                                  "</tool_call>",
                                                  "<arg_key>",
                                                  "</arg_key>",
                                                  "<arg_value>",
                                                  "</arg_value>",
                                                  "[TOOL_CALLS]",
                                                  "<|python_tag|>",
                                                  "<|tool_calls_section_begin|>",
                                                  "<|tool_calls_section_end|>",
                                                  "<|tool_call_begin|>",
                                                  "<|tool_call_argument_begin|>",
                                                  "<|tool_call_end|>",
                                                  "<｜tool▁calls▁begin｜>",
                                                  "<｜tool▁calls▁end｜>",
                                                  "<｜tool▁call▁begin｜>",
                                                  "<｜tool▁call▁end｜>",
                                                  "<｜tool▁sep｜>"};
  for (std::string_view m : kMarkers) {
    if (t == m) return true;
  }
  return false;
}

ParsedReply parse_tool_calls(const std::string& reply) {
  ParsedReply out;
  out.content = reply;
  const auto json_call = [](const std::string& body) -> std::optional<ToolCall> {
    const auto j = try_parse_json(trim(body));
    return j ? call_from_object(*j) : std::nullopt;
  };
  // Hermes / Qwen, then GLM-4.5 (same tags, a different body).
  if (spans(reply, "<tool_call>", "</tool_call>", json_call, out) ||
      spans(reply, "<tool_call>", "</tool_call>", glm_call, out)) {
    out.content = trim(out.content);
    return out;
  }
  // Kimi-K2.
  if (spans(
          reply, "<|tool_call_begin|>", "<|tool_call_end|>",
          [](const std::string& body) -> std::optional<ToolCall> {
            const size_t sep = body.find("<|tool_call_argument_begin|>");
            if (sep == std::string::npos) return std::nullopt;
            std::string name = trim(body.substr(0, sep));
            if (name.rfind("functions.", 0) == 0) name = name.substr(10);
            name = name.substr(0, name.rfind(':'));
            const auto args = try_parse_json(body.substr(sep + 28));
            if (name.empty() || !args || !args->is_object()) return std::nullopt;
            return ToolCall{name, args->dump()};
          },
          out)) {
    for (const char* marker : {"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"}) {
      for (size_t p; (p = out.content.find(marker)) != std::string::npos;)
        out.content.erase(p, std::string(marker).size());
    }
    out.content = trim(out.content);
    return out;
  }
  // DeepSeek-V3.1.
  if (spans(
          reply, "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
          [](const std::string& body) -> std::optional<ToolCall> {
            const std::string sep = "<｜tool▁sep｜>";
            const size_t s = body.find(sep);
            if (s == std::string::npos) return std::nullopt;
            const std::string name = trim(body.substr(0, s));
            const auto args = try_parse_json(trim(body.substr(s + sep.size())));
            if (name.empty() || !args || !args->is_object()) return std::nullopt;
            return ToolCall{name, args->dump()};
          },
          out)) {
    for (const std::string marker : {"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"}) {
      for (size_t p; (p = out.content.find(marker)) != std::string::npos;)
        out.content.erase(p, marker.size());
    }
    out.content = trim(out.content);
    return out;
  }
  // Mistral: [TOOL_CALLS] then a JSON list; Llama 3: the whole reply one call object.
  std::string body = trim(reply);
  std::string before;
  if (const size_t m = body.find("[TOOL_CALLS]"); m != std::string::npos) {
    before = trim(body.substr(0, m));
    body = trim(body.substr(m + 12));
  } else if (body.rfind("<|python_tag|>", 0) == 0) {
    body = trim(body.substr(14));
  }
  if (const auto j = try_parse_json(body)) {
    std::vector<ToolCall> calls;
    for (const json& item : j->is_array() ? *j : json::array({*j})) {
      const auto c = call_from_object(item);
      if (!c) return out;
      calls.push_back(*c);
    }
    if (!calls.empty()) {
      out.calls = std::move(calls);
      out.content = before;
    }
  }
  return out;
}

}  // namespace mcmoe::api
