// mcmoe serve against real HTTP clients on a free loopback port (server/http_server.h): the
// OpenAI shapes, greedy text equal to `mcmoe run` on the rendered prompt, 16 concurrent
// streams each equal to its single-client text, a client that disconnects freeing its slot,
// and malformed or hostile requests answered with the right status while the server keeps
// serving.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/test_util.h"
#include "server/server_test_util.h"

namespace mcmoe {
namespace {

using json = nlohmann::json;
using test::TestServer;

json chat_body(const std::string& user, int max_tokens, bool stream = false) {
  return {{"messages", {{{"role", "user"}, {"content", user}}}},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"stream", stream}};
}

std::string chat_text(httplib::Client& c, const std::string& user, int max_tokens) {
  const auto res =
      c.Post("/v1/chat/completions", chat_body(user, max_tokens).dump(), "application/json");
  if (!res || res->status != 200) {
    ADD_FAILURE() << "chat request failed: " << (res ? res->body : httplib::to_string(res.error()));
    return {};
  }
  return json::parse(res->body)["choices"][0]["message"]["content"].get<std::string>();
}

// Reads a /metrics value.
double metric(httplib::Client& c, const std::string& name) {
  const auto res = c.Get("/metrics");
  if (!res) return -1;
  const std::string key = "\nmcmoe_" + name + " ";
  const size_t at = res->body.find(key);
  return at == std::string::npos ? -1 : std::stod(res->body.substr(at + key.size()));
}

TEST(Server, ChatEqualsRunOnTheRenderedPrompt) {
  TestServer srv;
  auto c = srv.client();
  const std::string user = "Once upon a time, the prince said";
  const auto tpl =
      c.Post("/apply-template", json{{"messages", {{{"role", "user"}, {"content", user}}}}}.dump(),
             "application/json");
  ASSERT_TRUE(tpl);
  ASSERT_EQ(tpl->status, 200) << tpl->body;
  const std::string prompt = json::parse(tpl->body)["prompt"].get<std::string>();
  EXPECT_EQ(prompt,
            "user: " + user + "\nassistant:");  // the stated plain format (no template in the file)

  // `mcmoe run` prints the prompt, then each generated token's piece, then a newline.
  const test::CliResult run =
      test::run_cli("run -m " + test::quote(test::tiny_model_path()) + " -p " +
                    test::quote(prompt) + " -n 24 --temp 0 --special --ctx 512");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(run.out.rfind(prompt, 0), 0u);
  const std::string run_text = run.out.substr(prompt.size(), run.out.size() - prompt.size() - 1);

  const auto res = c.Post("/v1/chat/completions", chat_body(user, 24).dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "mixtral-tiny");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], run_text);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 24);
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + 24);

  // Streaming: the same text in deltas, a role first, one finish_reason, usage, [DONE].
  json body = chat_body(user, 24, true);
  body["stream_options"] = {{"include_usage", true}};
  const auto sres = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(sres);
  ASSERT_EQ(sres->status, 200);
  EXPECT_EQ(sres->get_header_value("Content-Type"), "text/event-stream");
  const test::StreamResult s = test::parse_stream(sres->body, true);
  EXPECT_TRUE(s.well_formed) << s.problem;
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, run_text);
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_EQ(s.usage["completion_tokens"], 24);
  EXPECT_NE(test::sse_events(sres->body).front().find("\"role\":\"assistant\""), std::string::npos);

  // Completions on the rendered prompt give the same text.
  const auto cres = c.Post("/v1/completions",
                           json{{"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}}.dump(),
                           "application/json");
  ASSERT_TRUE(cres);
  ASSERT_EQ(cres->status, 200) << cres->body;
  EXPECT_EQ(json::parse(cres->body)["choices"][0]["text"], run_text);
}

TEST(Server, StopStringsEndTheTextBeforeThem) {
  TestServer srv;
  auto c = srv.client();
  const std::string full = chat_text(c, "Once upon a time", 32);
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(8, 3);  // three bytes from the middle of the reply
  json body = chat_body("Once upon a time", 32);
  body["stop"] = json::array({"never appears \x01", stop});
  for (bool stream : {false, true}) {
    body["stream"] = stream;
    const auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(res);
    const std::string text =
        stream ? test::parse_stream(res->body, true).text
               : json::parse(res->body)["choices"][0]["message"]["content"].get<std::string>();
    EXPECT_EQ(text, full.substr(0, full.find(stop))) << (stream ? "stream" : "plain");
  }
}

TEST(Server, SixteenConcurrentStreamsEachGetTheirSingleClientText) {
  TestServer srv({.parallel = 16, .queue = 16});
  auto c = srv.client();
  std::vector<std::string> prompts, alone;
  for (int i = 0; i < 16; ++i)
    prompts.push_back("Tell me story number " + std::to_string(i) + " about the king");
  for (const std::string& p : prompts) alone.push_back(chat_text(c, p, 40));
  const double tokens0 = metric(c, "generated_tokens_total"),
               steps0 = metric(c, "forward_steps_total");

  std::vector<test::StreamResult> got(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto ci = srv.client();
      const auto res = ci.Post("/v1/chat/completions", chat_body(prompts[i], 40, true).dump(),
                               "application/json");
      if (!res || res->status != 200) {
        got[i].problem = res ? res->body : httplib::to_string(res.error());
        got[i].well_formed = false;
        return;
      }
      got[i] = test::parse_stream(res->body, true);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 16; ++i) {
    EXPECT_TRUE(got[i].well_formed) << i << ": " << got[i].problem;
    EXPECT_TRUE(got[i].done) << i;
    EXPECT_EQ(got[i].text, alone[i]) << "stream " << i;
  }
  // They were decoded together: far fewer forward passes than tokens.
  const double tokens = metric(c, "generated_tokens_total") - tokens0,
               steps = metric(c, "forward_steps_total") - steps0;
  EXPECT_GE(tokens, 16 * 30);
  EXPECT_LT(steps, tokens / 4) << steps << " steps for " << tokens << " tokens";
}

TEST(Server, ADisconnectedStreamFreesItsSlot) {
  TestServer srv({.parallel = 2});
  auto c = srv.client();
  const int fd = test::connect_loopback(srv.port());
  ASSERT_GE(fd, 0);
  const std::string body = chat_body("Once upon a time", 400, true).dump();
  ASSERT_TRUE(test::send_all(
      fd,
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body));
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);  // headers and the first chunk: it is generating
  for (int i = 0; i < 500 && metric(c, "slots_in_use") != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(metric(c, "slots_in_use"), 1);
  ::close(fd);
  const auto t0 = std::chrono::steady_clock::now();
  while (metric(c, "slots_in_use") != 0 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(metric(c, "slots_in_use"), 0);
  EXPECT_EQ(metric(c, "requests_cancelled_total"), 1);
  EXPECT_LT(metric(c, "generated_tokens_total"), 400);
  EXPECT_FALSE(chat_text(c, "Once upon a time", 4).empty());
}

// SIGTERM's path (cli/cmd_serve.cpp): a stream in flight ends well-formed, with an error
// event saying the server is stopping and [DONE], and the server stops.
TEST(Server, ShutdownEndsInFlightStreamsWellFormed) {
  TestServer srv;
  std::string body;
  std::thread client([&] {
    auto c = srv.client();
    json req = chat_body("Once upon a time", 400, true);
    req["ignore_eos"] = true;
    const auto res = c.Post("/v1/chat/completions", req.dump(), "application/json");
    if (res) body = res->body;
  });
  auto c = srv.client();
  for (int i = 0; i < 500 && metric(c, "generated_tokens_total") < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  srv.shutdown();
  client.join();
  const std::vector<std::string> events = test::sse_events(body);
  ASSERT_GE(events.size(), 3u) << body;
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_NE(events[events.size() - 2].find("the server is stopping"), std::string::npos)
      << events[events.size() - 2];
  EXPECT_LT(srv.metrics().generated_tokens.load(), 400);
}

// With tools, a reply is searched for calls (api/tool_calls.h, tested per format there) and,
// streaming, held back until it is whole. The tiny model never calls a tool and its plain
// template ignores tools, so the reply is the same text as without tools, in one piece.
TEST(Server, RepliesToRequestsWithToolsAreWholeText) {
  TestServer srv;
  auto c = srv.client();
  const std::string plain = chat_text(c, "Weather in Paris?", 16);
  json body = chat_body("Weather in Paris?", 16);
  body["tools"] =
      json::parse(R"([{"type": "function", "function": {"name": "get_weather", "parameters":
      {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  const auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], plain);
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  body["stream"] = true;
  const auto sres = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(sres);
  const test::StreamResult s = test::parse_stream(sres->body, true);
  EXPECT_TRUE(s.well_formed) << s.problem;
  EXPECT_EQ(s.text, plain);
  EXPECT_EQ(test::sse_events(sres->body).size(), 4u);  // role, the whole text, finish, [DONE]
}

TEST(ServerToolCalls, OnlyCallsToTheRequestsToolsCount) {
  std::string content;
  const std::string reply =
      "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>";
  auto calls = server::tool_calls_of({"get_weather"}, reply, &content);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(content, "Checking.");
  const json tc = server::tool_calls_json(calls);
  EXPECT_EQ(tc[0]["type"], "function");
  EXPECT_EQ(tc[0]["function"]["name"], "get_weather");
  EXPECT_EQ(tc[0]["function"]["arguments"], R"({"city":"Paris"})");
  EXPECT_EQ(tc[0]["id"].get<std::string>().rfind("call_", 0), 0u);
  calls = server::tool_calls_of({"other_tool"}, reply, &content);  // an unknown name: text
  EXPECT_TRUE(calls.empty());
  EXPECT_EQ(content, reply);
  calls = server::tool_calls_of({}, reply, &content);  // no tools asked for: text
  EXPECT_TRUE(calls.empty());
}

struct BadRequest {
  const char* what;
  std::string method, path, body;
  int status;
  std::string fragment;  // in error.message
};

TEST(Server, MalformedRequestsGetTheRightStatusAndTheServerKeepsServing) {
  TestServer srv({.n_ctx = 256});
  auto c = srv.client();
  const std::string chat = "/v1/chat/completions", comp = "/v1/completions";
  const std::string msgs = R"("messages": [{"role": "user", "content": "hi"}])";
  const auto with = [&](const std::string& field) { return "{" + msgs + ", " + field + "}"; };
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += "king queen ";
  const std::vector<BadRequest> cases = {
      {"invalid JSON", "POST", chat, "{bad", 400, "not valid JSON"},
      {"empty body", "POST", chat, "", 400, "not valid JSON"},
      // 200,000 nested arrays overflowed the stack when the body was copied (found while
      // writing the fuzzing harness for request bodies).
      {"nested 200,000 deep", "POST", chat,
       "{" + msgs + R"(, "x": )" + std::string(200000, '[') + std::string(200000, ']') + "}", 400,
       "nesting deeper than 128 levels"},
      {"a JSON list", "POST", chat, "[]", 400, "must be a JSON object"},
      {"a JSON string", "POST", chat, "\"hi\"", 400, "must be a JSON object"},
      {"no messages", "POST", chat, "{}", 400, "'messages'"},
      {"messages a string", "POST", chat, R"({"messages": "hi"})", 400, "'messages'"},
      {"messages empty", "POST", chat, R"({"messages": []})", 400, "non-empty"},
      {"message a number", "POST", chat, R"({"messages": [1]})", 400, "messages[0]"},
      {"role missing", "POST", chat, R"({"messages": [{"content": "hi"}]})", 400,
       "messages[0].role"},
      {"role a number", "POST", chat, R"({"messages": [{"role": 3, "content": "hi"}]})", 400,
       "messages[0].role"},
      {"content a number", "POST", chat, R"({"messages": [{"role": "user", "content": 5}]})", 400,
       "content"},
      {"an image part", "POST", chat,
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
       400, "only text parts"},
      {"max_tokens a string", "POST", chat, with(R"("max_tokens": "ten")"), 400,
       "'max_tokens' must be an integer"},
      {"max_tokens negative", "POST", chat, with(R"("max_tokens": -5)"), 400,
       "'max_tokens' must be between 1"},
      {"max_tokens zero", "POST", chat, with(R"("max_tokens": 0)"), 400,
       "'max_tokens' must be between 1"},
      {"max_tokens huge", "POST", chat, with(R"("max_tokens": 1000000000000)"), 400,
       "context holds 256"},
      {"max_tokens fractional", "POST", chat, with(R"("max_tokens": 1.5)"), 400,
       "must be an integer"},
      {"max_completion_tokens negative", "POST", chat, with(R"("max_completion_tokens": -1)"), 400,
       "'max_completion_tokens'"},
      {"temperature too high", "POST", chat, with(R"("temperature": 5)"), 400,
       "'temperature' must be between 0 and 2"},
      {"temperature a string", "POST", chat, with(R"("temperature": "hot")"), 400,
       "'temperature' must be a number"},
      {"top_p above 1", "POST", chat, with(R"("top_p": 2)"), 400, "'top_p'"},
      {"top_k negative", "POST", chat, with(R"("top_k": -1)"), 400, "'top_k'"},
      {"seed a string", "POST", chat, with(R"("seed": "x")"), 400, "'seed'"},
      {"stop a number", "POST", chat, with(R"("stop": 7)"), 400, "'stop'"},
      {"stop entry a number", "POST", chat, with(R"("stop": ["a", 7])"), 400, "'stop' entries"},
      {"too many stops", "POST", chat,
       with(
           R"("stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])"),
       400, "at most 16"},
      {"stream a string", "POST", chat, with(R"("stream": "yes")"), 400,
       "'stream' must be true or false"},
      {"stream_options a list", "POST", chat, with(R"("stream": true, "stream_options": [1])"), 400,
       "'stream_options'"},
      {"n = 2", "POST", chat, with(R"("n": 2)"), 400, "'n'"},
      {"logprobs", "POST", chat, with(R"("logprobs": true)"), 400, "logprobs"},
      {"model a number", "POST", chat, with(R"("model": 5)"), 400, "'model' must be a string"},
      {"tools not a list", "POST", chat, with(R"("tools": {"a": 1})"), 400,
       "'tools' must be a list"},
      {"invalid UTF-8", "POST", chat,
       "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}", 400, "not valid JSON"},
      {"prompt over the context", "POST", comp, json{{"prompt", long_prompt}}.dump(), 400,
       "context holds 256"},
      {"chat over the context", "POST", chat,
       json{{"messages", {{{"role", "user"}, {"content", long_prompt}}}}}.dump(), 400,
       "context holds 256"},
      {"no prompt", "POST", comp, "{}", 400, "'prompt' is required"},
      {"prompt a number", "POST", comp, R"({"prompt": 5})", 400, "'prompt' must be"},
      {"token id out of range", "POST", comp, R"({"prompt": [1, 999999]})", 400, "token ids"},
      {"tokenize without content", "POST", "/tokenize", "{}", 400, "'content'"},
      {"apply-template without messages", "POST", "/apply-template", "{}", 400, "'messages'"},
      {"unknown route", "GET", "/v2/nothing", "", 404, "no route GET /v2/nothing"},
      {"unknown POST route", "POST", "/v1/embeddings", "{}", 404, "no route POST /v1/embeddings"},
      {"GET on a POST route", "GET", chat, "", 404, "no route GET"},
      {"a 10 MB body", "POST", chat, std::string(10 << 20, 'x'), 413,
       "larger than this server takes"},
  };
  ASSERT_GE(cases.size(), 30u);
  for (const BadRequest& bc : cases) {
    SCOPED_TRACE(bc.what);
    const httplib::Result res =
        bc.method == "GET" ? c.Get(bc.path) : c.Post(bc.path, bc.body, "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, bc.status) << res->body;
    json j;
    ASSERT_NO_THROW(j = json::parse(res->body)) << res->body;
    ASSERT_TRUE(j.contains("error")) << res->body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(bc.fragment), std::string::npos)
        << res->body;
    EXPECT_TRUE(j["error"]["type"].is_string());
  }
  const auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_FALSE(chat_text(c, "Once upon a time", 4).empty());
  EXPECT_EQ(metric(c, "requests_total"), 1);  // none of the bad ones reached the batcher
}

TEST(Server, ApiKeyIsRequiredWhereSet) {
  TestServer srv({.api_key = "sesame"});
  auto c = srv.client();
  const std::string body = chat_body("hi", 2).dump();
  auto res = c.Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "authentication_error");
  res =
      c.Post("/v1/chat/completions", {{"Authorization", "Bearer wrong"}}, body, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_NE(res->body.find("wrong"), std::string::npos);
  res = c.Get("/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  res = c.Post("/v1/chat/completions", {{"Authorization", "Bearer sesame"}}, body,
               "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  res = c.Get("/health");  // health checks need no key
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(Server, FullSlotsAndQueueGive503WithRetryAfter) {
  TestServer srv({.parallel = 1, .queue = 0});
  auto c = srv.client();
  // One long stream holds the only slot.
  const int fd = test::connect_loopback(srv.port());
  ASSERT_GE(fd, 0);
  const std::string body = chat_body("Once upon a time", 400, true).dump();
  ASSERT_TRUE(
      test::send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body));
  char buf[256];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);
  const auto res = c.Post("/v1/chat/completions", chat_body("hi", 2).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "server_overloaded");
  EXPECT_EQ(metric(c, "requests_refused_total"), 1);
  ::close(fd);
}

TEST(Server, SlowHeadersAndAFloodOfConnectionsDoNotStopOthers) {
  TestServer srv;
  // A client sending its headers one byte a second.
  std::atomic<bool> slow_done{false};
  std::thread slow([&] {
    const int fd = test::connect_loopback(srv.port());
    const std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";
    for (size_t i = 0; i < req.size() && i < 4; ++i) {
      test::send_all(fd, req.substr(i, 1));
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    ::close(fd);
    slow_done = true;
  });
  // 150 connections opened and left silent.
  std::vector<int> flood;
  for (int i = 0; i < 150; ++i) {
    const int fd = test::connect_loopback(srv.port());
    if (fd >= 0) flood.push_back(fd);
  }
  EXPECT_EQ(flood.size(), 150u);
  auto c = srv.client(30);
  const auto t0 = std::chrono::steady_clock::now();

  EXPECT_FALSE(chat_text(c, "Once upon a time", 4).empty());
  const auto res = c.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(slow_done.load())
      << "the slow client should still be sending while others are served";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  for (int fd : flood) ::close(fd);
  slow.join();
}

TEST(Server, ModelsTokenizeAndMetrics) {
  TestServer srv;
  auto c = srv.client();
  auto res = c.Get("/v1/models");
  ASSERT_TRUE(res);
  const json m = json::parse(res->body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "mixtral-tiny");
  res = c.Post("/tokenize", R"({"content": "Once upon a time", "with_pieces": true})",
               "application/json");
  ASSERT_TRUE(res);
  const json t = json::parse(res->body);
  std::string joined;
  for (const auto& p : t["tokens"]) joined += p["piece"].get<std::string>();
  EXPECT_EQ(joined, " Once upon a time");  // SentencePiece's space prefix
  res = c.Post("/tokenize", R"({"content": "Once", "add_special": true})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body)["tokens"][0], srv.model().tokenizer().bos_id());
  chat_text(c, "hi", 3);
  res = c.Get("/metrics");
  ASSERT_TRUE(res);
  for (const char* name :
       {"requests_total 1", "generated_tokens_total 3", "queue_depth 0", "slots_in_use 0",
        "slots_total 4", "# TYPE mcmoe_tokens_per_second gauge"}) {
    EXPECT_NE(res->body.find(name), std::string::npos) << name << "\n" << res->body;
  }
  res = c.Get("/");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("/v1/chat/completions"), std::string::npos);
}

}  // namespace
}  // namespace mcmoe
