#include "cli/common.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

model::LoadOptions load_options_flags(const Args& a) {
  if (a.has("--mmap") && a.has("--no-mmap")) fail("--mmap and --no-mmap exclude each other");
  model::LoadOptions o;
  if (a.has("--mmap")) o.memory = model::LoadOptions::Memory::kMap;
  if (a.has("--no-mmap")) o.memory = model::LoadOptions::Memory::kRead;
  return o;
}

std::unique_ptr<model::Model> load_model_verbose(const std::string& path, const model::LoadOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto m = model::Model::load(path, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "loaded %s in %.2f s: %s\n", path.c_str(), s, m->config().summary().c_str());
  return m;
}

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int threads_flag(const Args& a) { return static_cast<int>(a.integer("--threads", default_threads(), 1, 1024)); }

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> prompt_ids(const model::Model& m, const std::string& text) {
  std::vector<int32_t> ids;
  if (m.tokenizer().add_bos()) ids.push_back(m.tokenizer().bos_id());
  const auto body = m.tokenizer().encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

Progress::Progress(std::string label) : label_(std::move(label)), tty_(::isatty(2)) {}

void Progress::update(int64_t done, int64_t total, const std::string& extra) {
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  if (tty_) {
    const int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r%s [%s%s] %lld/%lld %s", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), extra.c_str());
    std::fflush(stderr);
    return;
  }
  const int decile = static_cast<int>(frac * 10);
  if (decile != last_decile_) {
    last_decile_ = decile;
    std::fprintf(stderr, "%s %lld/%lld %s\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), extra.c_str());
  }
}

void Progress::finish(const std::string& extra) {
  if (tty_) std::fprintf(stderr, "\n");
  if (!extra.empty()) std::fprintf(stderr, "%s %s\n", label_.c_str(), extra.c_str());
}

}  // namespace mcmoe::cli
