// Tool calls parsed from replies in each family's format. The model outputs below are what
// the families' own templates render for an assistant message with tool_calls
// (tests/data/templates/expected.json, conversation "tool_calls"), so a model that learned
// its template's format is understood.
#include "api/tool_calls.h"

#include <gtest/gtest.h>

namespace mcmoe {
namespace {

const std::string kArgs = R"({"city":"Paris","unit":"c"})";

void expect_one_call(const std::string& reply, const std::string& content = "") {
  SCOPED_TRACE(reply);
  const api::ParsedReply r = api::parse_tool_calls(reply);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(r.calls[0].arguments, kArgs);
  EXPECT_EQ(r.content, content);
}

TEST(ToolCalls, EachFamilysFormat) {
  // Qwen3 / Qwen2.5 / Hermes 3.
  expect_one_call(
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": "
      "\"c\"}}\n</tool_call>");
  expect_one_call(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\", \"unit\": \"c\"}}\n</tool_call>",
      "Let me check.");
  // GLM-4.5 (values that are not JSON stay strings).
  expect_one_call(
      "\n<think></think>\n<tool_call>get_weather<arg_key>city</arg_key>\n<arg_value>Paris</"
      "arg_value>"
      "<arg_key>unit</arg_key>\n<arg_value>c</arg_value></tool_call>",
      "<think></think>");
  // Llama 3.1 (python_tag optional).
  expect_one_call(
      "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"c\"}}");
  expect_one_call(
      "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": "
      "\"c\"}}");
  // Mistral.
  expect_one_call(
      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": "
      "\"c\"}}]");
  // Kimi-K2.
  expect_one_call(
      "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_"
      "begin|>"
      "{\"city\": \"Paris\", \"unit\": \"c\"}<|tool_call_end|><|tool_calls_section_end|>");
  // DeepSeek-V3.1.
  expect_one_call(
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\", "
      "\"unit\": \"c\"}"
      "<｜tool▁call▁end｜><｜tool▁calls▁end｜>");
}

TEST(ToolCalls, SeveralCallsAndStringArguments) {
  const api::ParsedReply r = api::parse_tool_calls(
      "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}}</tool_call>\n"
      "<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"y\\\": [2]}\"}</tool_call>");
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "a");
  EXPECT_EQ(r.calls[0].arguments, R"({"x":1})");
  EXPECT_EQ(r.calls[1].name, "b");
  EXPECT_EQ(r.calls[1].arguments, R"({"y":[2]})");
  EXPECT_EQ(r.content, "");
}

TEST(ToolCalls, TextThatIsNotACallStaysText) {
  for (const std::string reply :
       {"The weather in Paris is mild.", "{\"name\": \"Bob\", \"age\": 3}", "[1, 2, 3]",
        "<tool_call>{not json}</tool_call>",
        "<tool_call>{\"name\": \"a\", \"arguments\": {\"x\": 1}}",
        "{\"name\": \"a\", \"arguments\": [1]}", ""}) {
    const api::ParsedReply r = api::parse_tool_calls(reply);
    EXPECT_TRUE(r.calls.empty()) << reply;
    EXPECT_EQ(r.content, reply);
  }
}

}  // namespace
}  // namespace mcmoe
