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
      with_groups({kModelFlag,
                   {"-n", "N", "512", "most tokens per reply"},
                   {"--system", "TEXT", "", "a system message"},
                   {"--ctx", "N", "min(trained, 4096)",
                    "context size; the oldest turns are dropped to fit"}},
                  {sampling_flag_table(), session_flag_table(), load_flag_table(),
                   offload_flag_table(), odp_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  api::ChatOptions co;
  co.max_reply_tokens = static_cast<int>(a.integer("-n", 512, 1, 1 << 20));
  co.sampling = sampler_params(a);
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
    try {
      chat.reply(line, [](const std::string& piece) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
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
