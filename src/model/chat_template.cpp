#include "model/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "format/gguf.h"
#include "template/jinja.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in = open_regular_file(p.string(), std::ios::binary);
  if (!in) fail("{}: cannot open", p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// tokenizer_config.json's chat_template: a string, or [{name, template}, ...].
bool template_from_config(const fs::path& path, ChatTemplate& t) {
  const nlohmann::ordered_json j = read_ordered_json_file(path.string());
  if (!j.is_object() || !j.contains("chat_template") || j["chat_template"].is_null()) return false;
  const auto& ct = j["chat_template"];
  if (ct.is_string()) {
    t.source = ct.get<std::string>();
    t.origin = path.string() + " chat_template";
    return true;
  }
  if (ct.is_array()) {
    for (const auto& entry : ct) {
      if (json_string(entry, "name") == "default" && entry.contains("template") &&
          entry["template"].is_string()) {
        t.source = entry["template"].get<std::string>();
        t.origin = path.string() + " chat_template (\"default\")";
        return true;
      }
    }
    fail("{}: chat_template is a list without a \"default\" entry", path.string());
  }
  fail("{}: chat_template: expected a string or a list of {{name, template}}, found {}",
       path.string(), std::string(ct.type_name()));
}

}  // namespace

ChatTemplate chat_template_of(const Model& m) {
  ChatTemplate t;
  const auto& tok = m.tokenizer();
  if (tok.bos_id() >= 0) t.bos_token = tok.token_to_piece(tok.bos_id());
  if (tok.eos_id() >= 0) t.eos_token = tok.token_to_piece(tok.eos_id());
  if (const format::GgufFile* g = m.gguf(); g && g->has("tokenizer.chat_template")) {
    t.source = g->get_string("tokenizer.chat_template");
    t.origin = m.path() + ": GGUF tokenizer.chat_template";
    return t;
  }
  const fs::path dir =
      fs::is_directory(m.path()) ? fs::path(m.path()) : fs::path(m.path()).parent_path();
  if (!m.is_gguf()) {
    if (fs::exists(dir / "chat_template.jinja")) {
      t.source = read_file(dir / "chat_template.jinja");
      t.origin = (dir / "chat_template.jinja").string();
      return t;
    }
    if (fs::exists(dir / "tokenizer_config.json") &&
        template_from_config(dir / "tokenizer_config.json", t))
      return t;
  }
  t.source = kPlainTemplate;
  t.origin = "plain \"role: content\" lines (" + m.path() + " has no chat template)";
  return t;
}

std::string render_chat(const ChatTemplate& t, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools, bool add_generation_prompt,
                        const nlohmann::ordered_json& extra) {
  if (!messages.is_array())
    fail("chat: messages must be a list, found {}", std::string(messages.type_name()));
  nlohmann::ordered_json ctx = extra.is_object() ? extra : nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  if (tools.is_array()) ctx["tools"] = tools;
  ctx["add_generation_prompt"] = add_generation_prompt;
  ctx["bos_token"] = t.bos_token;
  ctx["eos_token"] = t.eos_token;
  const jinja::Template tpl(t.source, t.origin);
  return tpl.render(jinja::Value::from_json(ctx));
}

}  // namespace mcmoe::model
