// mcmoe template: the model's own chat template (Hugging Face tokenizer_config.json or
// chat_template.jinja, GGUF tokenizer.chat_template) applied to a conversation; convert keeps
// the template in the GGUF; a model without one gets the stated plain format.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/hf_fixture.h"
#include "common/test_util.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

constexpr const char* kChatMl =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

void write_config_template(const std::string& dir, const nlohmann::json& chat_template) {
  nlohmann::json cfg = {{"chat_template", chat_template}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump();
}

TEST(TemplateCli, HfTemplateAppliesAndSurvivesConvert) {
  test::TempDir dir;
  const std::string hf = dir.path("hf");
  test::write_hf_fixture(hf, {});
  write_config_template(hf, kChatMl);
  const std::string want =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi "
      "there<|im_end|>\n<|im_start|>assistant\n";
  const auto r = run_cli("template -m " + quote(hf) + " -p 'hi there' --system 'Be brief.'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want);
  EXPECT_NE(r.err.find("tokenizer_config.json chat_template"), std::string::npos) << r.err;
  // The converted GGUF carries it as tokenizer.chat_template.
  const auto conv =
      run_cli("convert " + quote(hf) + " -o " + quote(dir.path("m.gguf")) + " --type q8_0");
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  const auto g =
      run_cli("template -m " + quote(dir.path("m.gguf")) + " -p 'hi there' --system 'Be brief.'");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  EXPECT_EQ(g.out, want);
  EXPECT_NE(g.err.find("GGUF tokenizer.chat_template"), std::string::npos) << g.err;
  // A messages file, without the generation prompt.
  std::ofstream(dir.path("msgs.json"))
      << R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])";
  const auto f = run_cli("template -m " + quote(hf) + " --messages " +
                         quote(dir.path("msgs.json")) + " --no-generation-prompt");
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(f.out, "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n");
}

TEST(TemplateCli, ListFormPlainFallbackAndErrors) {
  test::TempDir dir;
  const std::string hf = dir.path("hf");
  test::write_hf_fixture(hf, {});
  // No template anywhere: the plain format, said on stderr.
  const auto plain = run_cli("template -m " + quote(hf) + " -p hello");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "user: hello\nassistant:");
  EXPECT_NE(plain.err.find("has no chat template"), std::string::npos) << plain.err;
  // The list form picks "default".
  write_config_template(
      hf, nlohmann::json::array({{{"name", "tool_use"}, {"template", "T"}},
                                 {{"name", "default"}, {"template", "D{{ messages|length }}"}}}));
  const auto listed = run_cli("template -m " + quote(hf) + " -p hello");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "D1");
  // A template that refuses the conversation, a broken template, malformed inputs: one clear line.
  write_config_template(hf,
                        "{{ raise_exception('Only user and assistant roles are supported!') }}");
  test::expect_clean_error(run_cli("template -m " + quote(hf) + " -p x"),
                           {"Only user and assistant roles"});
  write_config_template(hf, "{% for m in messages %}");
  test::expect_clean_error(run_cli("template -m " + quote(hf) + " -p x"),
                           {"tokenizer_config.json", "endfor"});
  write_config_template(hf, 42);
  test::expect_clean_error(run_cli("template -m " + quote(hf) + " -p x"),
                           {"chat_template", "number"});
  std::ofstream(dir.path("bad.json")) << "[{\"role\": ";
  test::expect_clean_error(
      run_cli("template -m " + quote(hf) + " --messages " + quote(dir.path("bad.json"))),
      {"--messages", "malformed JSON"});
  test::expect_clean_error(
      run_cli("template -m " + quote(hf) + " -p x --tools " + quote(dir.path("missing.json"))),
      {"--tools", "missing.json: cannot open"});
}

}  // namespace
}  // namespace mcmoe
