#pragma once
// A multi-turn conversation with one model in one session (mcmoe chat): each turn renders the
// whole history with the model's chat template, reuses the KV cache of the prefix it shares
// with the previous turn, and streams the reply. History that no longer fits the context
// (with room for a reply) is dropped oldest turn first; a system message stays.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/generate.h"
#include "model/chat_template.h"
#include "model/session.h"

namespace mcmoe::api {

struct ChatOptions {
  int max_reply_tokens = 512;
  SamplerParams sampling;
  std::string system = {};  // empty: none
};

class Chat {
 public:
  Chat(model::Session& session, model::ChatTemplate tpl, const ChatOptions& o);
  // Adds the user's message and generates the reply, calling on_text with each final piece of
  // text (return false to stop early), leading whitespace left out. Returns the reply (also
  // kept in the history).
  std::string reply(const std::string& user,
                    const std::function<bool(const std::string&)>& on_text);
  void clear();                                   // forgets the history (the system message stays)
  int turns_dropped() const { return dropped_; }  // user+assistant pairs dropped to fit so far
  const nlohmann::ordered_json& messages() const { return messages_; }

 private:
  std::vector<int32_t> render_ids(bool add_generation_prompt) const;

  model::Session& session_;
  model::ChatTemplate tpl_;
  ChatOptions o_;
  Sampler sampler_;
  std::vector<int32_t> end_ids_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
  std::vector<int32_t> cached_;  // the ids whose keys and values the session holds
  int dropped_ = 0;
};

}  // namespace mcmoe::api
