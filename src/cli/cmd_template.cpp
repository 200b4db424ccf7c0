#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "model/chat_template.h"

namespace mcmoe::cli {

namespace {

// --messages / --tools: errors name the flag too.
nlohmann::ordered_json read_flag_json(const Args& a, const char* flag) {
  const std::string path = a.str(flag, "");
  return read_ordered_json_file(path, {}, fmt::format("{} {}", flag, path));
}

}  // namespace

// The model's chat template applied to a conversation: the prompt that chat and serve would
// feed the model (llama-server's /apply-template).
int cmd_template(const Argv& argv) {
  static const CommandSpec spec{
      "template",
      "render a conversation with the model's chat template (llama-server's /apply-template)",
      with_groups(
          {kModelFlag,
           {"-p", "TEXT", "", "one user message (or --messages)"},
           {"--system", "TEXT", "", "a system message before -p"},
           {"--messages", "FILE.json", "", "the conversation: a list of {role, content}"},
           {"--tools", "FILE.json", "", "tools in OpenAI's shape"},
           {"--no-generation-prompt", nullptr, "", "do not open an assistant turn at the end"}},
          {load_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  if (a.has("-p") == a.has("--messages"))
    fail("template: give exactly one of -p TEXT or --messages FILE.json");
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (a.has("--messages")) {
    messages = read_flag_json(a, "--messages");
    if (!messages.is_array())
      fail("--messages {}: expected a list of {{role, content}}", a.str("--messages", ""));
  } else {
    if (a.has("--system"))
      messages.push_back({{"role", "system"}, {"content", a.str("--system", "")}});
    messages.push_back({{"role", "user"}, {"content", a.str("-p", "")}});
  }
  const nlohmann::ordered_json tools = a.has("--tools") ? read_flag_json(a, "--tools") : nullptr;
  model::LoadOptions lo = load_options_flags(a);
  if (!a.has("--no-mmap"))
    lo.memory = model::LoadOptions::Memory::kMap;  // only the vocabulary is read
  const auto m = load_model_verbose(path, lo);
  const model::ChatTemplate t = model::chat_template_of(*m);
  std::fprintf(stderr, "chat template: %s\n", t.origin.c_str());
  const std::string prompt =
      model::render_chat(t, messages, tools, !a.has("--no-generation-prompt"));
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  return 0;
}

}  // namespace mcmoe::cli
