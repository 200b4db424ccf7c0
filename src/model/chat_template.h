#pragma once
// A model's chat template, found where its files keep it, and a conversation rendered with
// it (the prompt that run, chat and serve feed the model).
//
// Where the template comes from, first found: GGUF metadata `tokenizer.chat_template`; a
// Hugging Face directory's `chat_template.jinja`, or `chat_template` in its
// tokenizer_config.json (a string, or a list of {name, template} whose "default" entry is
// used). A model without one gets a stated plain format (kPlainTemplate) and `origin` says so.
#include <nlohmann/json.hpp>
#include <string>

#include "model/model.h"

namespace mcmoe::model {

// "<role>: <content>" lines, then "assistant:" when a reply is asked for.
inline constexpr const char* kPlainTemplate =
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}";

struct ChatTemplate {
  std::string source;     // Jinja text
  std::string origin;     // where it came from, for logs
  std::string bos_token;  // the model's BOS / EOS text, as templates expect them
  std::string eos_token;
};

ChatTemplate chat_template_of(const Model& m);

// messages: [{role, content, ...}]; tools: null or a list (OpenAI's shape); extra: more
// template variables (enable_thinking, reasoning_effort, ...). Fails naming the template on a
// template error or a refusal (raise_exception).
std::string render_chat(const ChatTemplate& t, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools, bool add_generation_prompt,
                        const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

}  // namespace mcmoe::model
