#include "common/test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace mcmoe::test {

std::string write_word_salad(const std::string& path, int words) {
  static const char* kWords[] = {"the", "king", "said", "to", "his", "daughter", "and", "a", "wolf", "came",
                                 "into", "forest", "where", "old", "woman", "lived", "once", "upon", "time", "gold"};
  std::mt19937 rng(3);
  std::string text;
  for (int i = 0; i < words; ++i) {
    text += kWords[rng() % 20];
    text += (i % 13 == 12) ? ".\n" : " ";
  }
  std::ofstream(path) << text;
  return path;
}

TempDir::TempDir() {
  std::random_device rd;
  dir_ = std::filesystem::temp_directory_path() /
         ("mcmoe_test_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
  std::filesystem::create_directories(dir_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

void expect_clean_error(const CliResult& r, const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  const size_t at = r.err.find("error: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_TRUE(at == 0 || r.err[at - 1] == '\n') << r.err;
  EXPECT_EQ(r.err.find('\n', at), r.err.size() - 1) << "one final line: " << r.err;
  for (const auto& f : fragments) EXPECT_NE(r.err.find(f), std::string::npos) << "missing '" << f << "' in: " << r.err;
}

CliResult run_cli(const std::string& args, const std::string& stdin_text) {
  TempDir tmp;
  const std::string out_path = tmp.path("out"), err_path = tmp.path("err"),
                    in_path = tmp.path("in");
  write_bytes(in_path, std::vector<uint8_t>(stdin_text.begin(), stdin_text.end()));
  const std::string cmd = quote(MCMOE_CLI_PATH) + " " + args + " >" + quote(out_path) + " 2>" +
                          quote(err_path) + " <" + quote(in_path);
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

pid_t spawn_cli(const std::vector<std::string>& args, const SpawnOptions& o) {
  // Everything the child needs is built before fork: between fork and exec a multithreaded
  // parent's child may only make async-signal-safe calls.
  std::vector<std::string> all{MCMOE_CLI_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : all) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) ADD_FAILURE() << "fork failed";
  if (pid != 0) return pid;
  const int out = ::open(o.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err = ::open(o.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0 || err < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
  if (o.address_space > 0) {
    const rlimit lim{o.address_space, o.address_space};
    if (::setrlimit(RLIMIT_AS, &lim) != 0) ::_exit(126);
  }
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

int wait_cli(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string shared_dir() {
  const auto p = std::filesystem::path(MCMOE_SOURCE_DIR) / ".." / "shared";
  return std::filesystem::exists(p / "models") ? std::filesystem::weakly_canonical(p).string() : "";
}

double relative_max_error(std::span<const float> got, std::span<const float> want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return diff / scale;
}

}  // namespace mcmoe::test
