#include "api/chat.h"

#include <algorithm>

#include "api/text_stream.h"
#include "core/error.h"

namespace mcmoe::api {

Chat::Chat(model::Session& session, model::ChatTemplate tpl, const ChatOptions& o)
    : session_(session),
      tpl_(std::move(tpl)),
      o_(o),
      sampler_(o.sampling),
      end_ids_(end_of_generation_ids(session.model().tokenizer())) {
  clear();
}

void Chat::clear() {
  messages_ = nlohmann::ordered_json::array();
  if (!o_.system.empty()) messages_.push_back({{"role", "system"}, {"content", o_.system}});
}

std::vector<int32_t> Chat::render_ids(bool add_generation_prompt) const {
  const std::string prompt = model::render_chat(tpl_, messages_, nullptr, add_generation_prompt);
  return prompt_tokens(session_.model().tokenizer(), prompt, true);
}

std::string Chat::reply(const std::string& user,
                        const std::function<bool(const std::string&)>& on_text) {
  messages_.push_back({{"role", "user"}, {"content", user}});
  // Room for the reply: drop the oldest user/assistant pair until the prompt fits.
  const int64_t room = std::min<int64_t>(o_.max_reply_tokens, session_.n_ctx() / 2);
  std::vector<int32_t> ids = render_ids(true);
  const size_t first = o_.system.empty() ? 0 : 1;
  while (static_cast<int64_t>(ids.size()) + room > session_.n_ctx() &&
         messages_.size() > first + 1) {
    messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(first));
    if (messages_.size() > first + 1 && messages_[first]["role"] == "assistant") {
      messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(first));
    }
    ++dropped_;
    ids = render_ids(true);
  }
  if (static_cast<int64_t>(ids.size()) >= session_.n_ctx()) {
    messages_.erase(messages_.end() - 1);
    fail("the message alone takes {} tokens; the context holds {}", ids.size(), session_.n_ctx());
  }
  // Keep the cached prefix this prompt shares with the last one (at least one token to eval).
  size_t keep = 0;
  while (keep < cached_.size() && keep + 1 < ids.size() && cached_[keep] == ids[keep]) ++keep;
  session_.truncate(0, static_cast<int64_t>(keep));
  cached_.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
  std::span<const float> logits = session_.eval(std::span<const int32_t>(ids).subspan(keep), false);
  cached_ = ids;

  const tokenizer::Tokenizer& tok = session_.model().tokenizer();
  // A reply's leading whitespace belongs to the prompt's "assistant:" boundary, not its
  // content: neither streamed nor kept.
  TextStream text({});
  std::string content;
  const auto deliver = [&](std::string piece) {
    if (content.empty()) piece.erase(0, std::min(piece.size(), piece.find_first_not_of(" \t\n")));
    content += piece;
    return piece.empty() || on_text(piece);
  };
  bool go_on = true;
  for (int i = 0; i < o_.max_reply_tokens && go_on; ++i) {
    const int32_t t = sampler_.sample(logits);
    if (std::find(end_ids_.begin(), end_ids_.end(), t) != end_ids_.end()) break;
    if (tok.token_type(t) != tokenizer::TokenType::Control) text.append(tok.token_to_piece(t));
    go_on = deliver(text.take());
    if (session_.n_past() >= session_.n_ctx()) break;
    logits = session_.eval(std::span<const int32_t>(&t, 1), false);
    cached_.push_back(t);
  }
  deliver(text.take(true));
  messages_.push_back({{"role", "assistant"}, {"content", content}});
  return content;
}

}  // namespace mcmoe::api
