// The list of families. Each ArchInfo is defined in its own file (model/arch/NAME.cpp).
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

extern const ArchInfo kLlamaArch, kQwen2MoeArch, kQwen3MoeArch, kOlmoeArch, kDeepseek2Arch,
    kGlm4MoeArch, kGptOssArch, kGraniteMoeArch;

namespace {
const ArchInfo* const kAll[] = {&kLlamaArch,     &kQwen2MoeArch, &kQwen3MoeArch, &kOlmoeArch,
                                &kDeepseek2Arch, &kGlm4MoeArch,  &kGptOssArch,   &kGraniteMoeArch};
}  // namespace

const ArchInfo& info(Arch a) {
  for (const ArchInfo* i : kAll) {
    if (i->arch == a) return *i;
  }
  fail("internal: architecture {} has no description", static_cast<int>(a));
}

const ArchInfo* find_by_gguf_name(std::string_view name) {
  for (const ArchInfo* i : kAll) {
    if (name == i->gguf_name) return i;
  }
  return nullptr;
}

const ArchInfo* find_by_hf_type(std::string_view model_type) {
  for (const ArchInfo* i : kAll) {
    for (const std::string& t : i->hf_model_types) {
      if (t == model_type) return i;
    }
  }
  return nullptr;
}

std::string known_gguf_names() {
  std::string s;
  for (const ArchInfo* i : kAll) s += (s.empty() ? "" : ", ") + std::string(i->gguf_name);
  return s;
}

std::string known_hf_types() {
  std::string s;
  for (const ArchInfo* i : kAll) {
    for (const std::string& t : i->hf_model_types) s += (s.empty() ? "" : ", ") + t;
  }
  return s;
}

}  // namespace mcmoe::model::arch
