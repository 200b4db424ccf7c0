#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "api/chat.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/offload_flags.h"
#include "core/error.h"

namespace mcmoe::cli {

// An interactive terminal chat (api/chat.h): one line per message, the reply streamed;
// /clear forgets the history, /exit (or end of input) ends. Reads piped input too.
int cmd_chat(const Argv& argv) {
  static const CommandSpec spec{
      "chat", "interactive chat with the model's template: one line per message; /clear, /exit",
      with_groups(
          {kModelFlag,
           {"-n", "N", "512", "most tokens per reply"},
           {"--temp", "T", "0.8", "sampling temperature (0: greedy)"},
           {"--top-k", "K", "40", "sample among the K most likely tokens (0: all)"},
           {"--top-p", "P", "0.95", "nucleus sampling threshold"},
           {"--seed", "S", "0", "sampling seed"},
           {"--system", "TEXT", "", "a system message"},
           {"--ctx", "N", "min(trained, 4096)",
            "context size; the oldest turns are dropped to fit"}},
          {session_flag_table(), load_flag_table(), offload_flag_table(), odp_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  api::ChatOptions co;
  co.max_reply_tokens = static_cast<int>(a.integer("-n", 512, 1, 1 << 20));
  co.sampling.temperature = static_cast<float>(a.number("--temp", 0.8, 0, 100));
  co.sampling.top_k = static_cast<int>(a.integer("--top-k", 40, 0, 1 << 24));
  co.sampling.top_p = static_cast<float>(a.number("--top-p", 0.95, 0, 1));
  co.sampling.seed = static_cast<uint64_t>(a.integer("--seed", 0, 0, INT64_MAX));
  co.system = a.str("--system", "");

  api::OpenModel om =
      api::open_model(open_options(a, path, static_cast<int>(a.integer("--ctx", 0, 0, 1 << 20))));
  model::Model* m = om.model.get();
  model::Session& session = *om.session;
  const model::ChatTemplate tpl = model::chat_template_of(*m);
  std::fprintf(stderr, "chat template: %s\n", tpl.origin.c_str());
  api::Chat chat(session, tpl, co);
  const bool tty = ::isatty(0);
  if (tty) std::fprintf(stderr, "type a message; /clear forgets the conversation, /exit ends\n");
  std::string line;
  while (true) {
    if (tty) {
      std::fputs("> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line.empty()) continue;
    if (line == "/clear") {
      chat.clear();
      std::fprintf(stderr, "(conversation cleared)\n");
      continue;
    }
    const int dropped = chat.turns_dropped();
    bool started = false;
    try {
      chat.reply(line, [&](const std::string& piece) {
        std::string_view p = piece;
        if (!started) {  // the reply's leading space separates it from the prompt
          const size_t skip = p.find_first_not_of(" \t\n");
          p = skip == std::string_view::npos ? std::string_view() : p.substr(skip);
          started = !p.empty();
        }
        std::fwrite(p.data(), 1, p.size(), stdout);
        std::fflush(stdout);
        return true;
      });
    } catch (const Error& e) {
      std::fprintf(stderr, "\nerror: %s\n", e.what());
      continue;
    }
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (chat.turns_dropped() > dropped) {
      std::fprintf(
          stderr,
          "(the oldest %d exchange(s) no longer fit the context of %d tokens and were dropped)\n",
          chat.turns_dropped() - dropped, session.n_ctx());
    }
  }
  return 0;
}

}  // namespace mcmoe::cli
