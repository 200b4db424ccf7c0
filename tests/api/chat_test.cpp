// api::Chat (mcmoe chat): each reply equals greedy generation on the rendered conversation in
// a fresh session (so reusing the cached prefix between turns changes nothing), /clear
// starts over, and a conversation longer than the context drops its oldest turns instead of
// failing.
#include "api/chat.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "api/generate.h"
#include "core/error.h"
#include "model/chat_template.h"
#include "model/model.h"

namespace mcmoe {
namespace {

std::unique_ptr<model::Model> tiny() {
  return model::Model::load(
      (std::filesystem::path(MCMOE_SOURCE_DIR) / "models/mixtral-tiny-q4_0.gguf").string());
}

// Greedy reply to `messages` computed from scratch: render, tokenize, generate.
std::string fresh_reply(model::Model& m, const nlohmann::ordered_json& messages, int n) {
  model::Session s(m, {.n_ctx = 512, .n_threads = 2});
  const model::ChatTemplate t = model::chat_template_of(m);
  const std::vector<int32_t> ids =
      api::prompt_tokens(m.tokenizer(), model::render_chat(t, messages, nullptr, true), true);
  api::Sampler greedy({.temperature = 0});
  const std::vector<int32_t> ends = api::end_of_generation_ids(m.tokenizer());
  std::string text;
  api::generate(s, ids, n, greedy, -1, [&](int32_t tok) {
    if (std::find(ends.begin(), ends.end(), tok) != ends.end()) return false;
    text += m.tokenizer().token_to_piece(tok);
    return true;
  });
  return text.substr(std::min(text.size(), text.find_first_not_of(" \t\n")));
}

TEST(Chat, RepliesEqualFreshGenerationAndClearStartsOver) {
  auto m = tiny();
  model::Session s(*m, {.n_ctx = 512, .n_threads = 2});
  api::Chat chat(s, model::chat_template_of(*m),
                 {.max_reply_tokens = 20, .sampling = {.temperature = 0}});
  std::string streamed;
  const std::string r1 = chat.reply("Tell me about the king.", [&](const std::string& p) {
    streamed += p;
    return true;
  });
  EXPECT_EQ(streamed, r1);  // streamed without the leading space, as kept
  EXPECT_EQ(r1, fresh_reply(*m,
                            nlohmann::ordered_json::parse(
                                R"([{"role": "user", "content": "Tell me about the king."}])"),
                            20));
  const nlohmann::ordered_json before = chat.messages();
  const std::string r2 =
      chat.reply("And what of the queen?", [](const std::string&) { return true; });
  nlohmann::ordered_json two = before;
  two.push_back({{"role", "user"}, {"content", "And what of the queen?"}});
  EXPECT_EQ(r2, fresh_reply(*m, two, 20));  // the second turn reused the first's cache
  EXPECT_EQ(chat.messages().size(), 4u);
  chat.clear();
  EXPECT_EQ(chat.messages().size(), 0u);
  EXPECT_EQ(chat.reply("Tell me about the king.", [](const std::string&) { return true; }), r1);
}

TEST(Chat, OldTurnsAreDroppedToFitTheContext) {
  auto m = tiny();
  model::Session s(*m, {.n_ctx = 96, .n_threads = 2});
  api::Chat chat(s, model::chat_template_of(*m),
                 {.max_reply_tokens = 16, .sampling = {.temperature = 0}, .system = "Be brief."});
  for (int i = 0; i < 8; ++i) {
    EXPECT_NO_THROW(chat.reply("Tell me about the king number " + std::to_string(i) + ".",
                               [](const std::string&) { return true; }));
  }
  EXPECT_GT(chat.turns_dropped(), 0);
  EXPECT_EQ(chat.messages()[0]["role"], "system");  // the system message stays
  EXPECT_LT(chat.messages().size(), 17u);
  // A single message longer than the whole context is refused, and the chat goes on.
  std::string huge;
  for (int i = 0; i < 200; ++i) huge += "king ";
  EXPECT_THROW(chat.reply(huge, [](const std::string&) { return true; }), Error);
  EXPECT_NO_THROW(chat.reply("And the queen?", [](const std::string&) { return true; }));
}

}  // namespace
}  // namespace mcmoe
