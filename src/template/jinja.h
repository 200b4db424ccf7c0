#pragma once
// A Jinja2 interpreter for chat templates (GGUF tokenizer.chat_template, Hugging Face
// tokenizer_config.json chat_template), rendering as transformers' apply_chat_template does:
// trim_blocks and lstrip_blocks on, loop controls (break, continue), tojson as json.dumps
// (ensure_ascii off), raise_exception and strftime_now as globals.
//
// Written here because no maintained C++ Jinja implementation is packaged by Debian (inja is
// a different language; llama.cpp's minja is not packaged). It covers what real chat
// templates use: for loops with loop.*, else and filters; if/elif/else; set (also of
// namespace attributes and as a block); namespaces; macros with defaults; filters and tests
// (jinja.cpp lists them); Python string, list and dict methods; slicing; and Jinja's
// whitespace control. Anything else is a clear error naming the template line.
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

#include "template/value.h"

namespace mcmoe::jinja {

struct Node;

class Template {
 public:
  // Parses `source`; fails naming `name`, the line and what was expected.
  Template(const std::string& source, std::string name = "chat template");
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  struct Options {
    // strftime_now's clock (seconds since the epoch), read as UTC; 0: the current local time.
    std::time_t now = 0;
    // Rendering gives up past this many output bytes or loop iterations (hostile templates).
    size_t max_output = size_t{64} << 20;
    int64_t max_steps = 1'000'000;  // real templates take a few thousand
  };
  // `context`: an object whose fields are the template's variables (messages, tools,
  // add_generation_prompt, bos_token, ...).
  std::string render(const Value& context, const Options& options) const;
  std::string render(const Value& context) const { return render(context, Options{}); }

 private:
  std::string name_;
  std::unique_ptr<Node> root_;
};

}  // namespace mcmoe::jinja
