// Outputs are written to PATH.tmp.<pid>, fsync'ed and renamed (core/mapped_file.h), so a
// process killed at any moment leaves the previous file byte-identical, or no file when there
// was none: never a truncated one. Checked by killing `mcmoe quantize` with SIGKILL before,
// while and after its temp file is written.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/test_util.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;
using test::quote;
using test::run_cli;

// When to send SIGKILL: after a delay, as soon as the temp file appears, or once it holds at
// least `temp_bytes` (the whole output: killed during the fsync or just before the rename).
struct KillPoint {
  enum Kind { kDelay, kTempAppears, kTempHolds } kind;
  std::chrono::microseconds delay{0};
  uint64_t temp_bytes = 0;

  std::string describe() const {
    switch (kind) {
      case kDelay:
        return "after " + std::to_string(delay.count()) + " us";
      case kTempAppears:
        return "when the temp file appears";
      case kTempHolds:
        return "when the temp file holds " + std::to_string(temp_bytes) + " bytes";
    }
    return "";
  }
};

struct KillOutcome {
  bool killed = false;     // false: the run ended before the kill point came
  bool mid_write = false;  // its PATH.tmp.<pid> existed after the kill
  int exit_code = -1;
};

KillOutcome run_and_kill(const std::vector<std::string>& args, const std::string& out,
                         const KillPoint& at) {
  const pid_t pid = test::spawn_cli(args);
  const std::string tmp = out + ".tmp." + std::to_string(pid);
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, WNOHANG) == pid) break;  // finished first
    struct stat st {};
    const bool temp = ::stat(tmp.c_str(), &st) == 0;
    const bool fire = at.kind == KillPoint::kDelay
                          ? std::chrono::steady_clock::now() - start >= at.delay
                      : at.kind == KillPoint::kTempAppears
                          ? temp
                          : temp && static_cast<uint64_t>(st.st_size) >= at.temp_bytes;
    if (fire) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    // The temp file lives for milliseconds (the whole quantization comes before it): poll
    // often enough to see it.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  KillOutcome r;
  r.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::error_code ec;
  r.mid_write = fs::exists(tmp, ec);
  fs::remove(tmp, ec);  // a killed writer cannot remove its own temp file
  return r;
}

// PATH.tmp.* files beside `out` (left by killed runs, or by a clean run that forgot one).
std::vector<std::string> temp_files(const std::string& out) {
  std::vector<std::string> found;
  const std::string prefix = fs::path(out).filename().string() + ".tmp.";
  for (const auto& e : fs::directory_iterator(fs::path(out).parent_path())) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) found.push_back(e.path().string());
  }
  return found;
}

class AtomicOutput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    // 2 layers x 8 experts of 256 x 512: quantize writes about 2.4 MiB, enough for its temp
    // file to live a few milliseconds.
    ASSERT_EQ(
        run_cli("synth --arch mixtral --layers 2 --dim 256 --ff 512 --experts 8 --type f16 -o " +
                quote(model()))
            .exit_code,
        0);
    test::write_word_salad(dir_->path("text.txt"), 3000);
    const auto c =
        run_cli("calibrate -m " + quote(model()) + " -f " + quote(dir_->path("text.txt")) +
                " --samples 4 --seq 64 -o " + quote(stats()));
    ASSERT_EQ(c.exit_code, 0) << c.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return dir_->path("model.gguf"); }
  static std::string stats() { return dir_->path("stats.json"); }
  // --rtn: deterministic and quick; the file's general.name is the output's stem, so every
  // output named q.gguf has the same bytes.
  static std::vector<std::string> quantize_to(const std::string& out) {
    return {"quantize", "-m", model(), "--stats", stats(), "--bits", "2", "--rtn", "-o", out};
  }
  static test::TempDir* dir_;
};
test::TempDir* AtomicOutput::dir_ = nullptr;

TEST_F(AtomicOutput, KilledQuantizeLeavesThePreviousFileIntact) {
  const std::string out = dir_->path("q.gguf");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(test::wait_cli(test::spawn_cli(quantize_to(out))), 0);
  const auto run_time =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  const std::vector<uint8_t> old = test::read_bytes(out);
  ASSERT_GT(old.size(), 1u << 20);
  EXPECT_TRUE(temp_files(out).empty()) << "a clean run leaves no temp file";

  // Delays spread over one run (loading, quantizing, writing); the temp-file points land in
  // the write itself. Timing only places the kills: what is checked is the file.
  std::vector<KillPoint> points;
  for (double f : {0.1, 0.5, 0.9, 0.98}) {
    points.push_back(
        {KillPoint::kDelay, std::chrono::microseconds(static_cast<int64_t>(f * run_time.count()))});
  }
  for (int i = 0; i < 2; ++i) {
    points.push_back({KillPoint::kTempAppears});
    points.push_back({KillPoint::kTempHolds, {}, old.size() / 2});
    points.push_back({KillPoint::kTempHolds, {}, old.size()});
  }
  int killed = 0, mid_write = 0;
  for (const KillPoint& at : points) {
    const KillOutcome r = run_and_kill(quantize_to(out), out, at);
    killed += r.killed;
    mid_write += r.killed && r.mid_write;
    if (!r.killed) {
      EXPECT_EQ(r.exit_code, 0);
    }
    // rename(2) replaces the old file in one step: the path never goes missing either.
    ASSERT_TRUE(fs::exists(out)) << "killed " << at.describe() << ": the old output disappeared";
    ASSERT_TRUE(test::read_bytes(out) == old)
        << "killed " << at.describe() << ": the output changed";
    for (const std::string& t : temp_files(out)) fs::remove(t);
  }
  std::printf("%d of %zu runs killed, %d of them while the temp file existed\n", killed,
              points.size(), mid_write);
  // The temp-file kill points must have caught at least one write in progress, or this test
  // checked nothing about atomicity.
  EXPECT_GE(mid_write, 1);
}

TEST_F(AtomicOutput, KillWithNoPreviousFileLeavesNone) {
  fs::create_directories(dir_->path("fresh"));
  const std::string out = dir_->path("fresh/q.gguf");
  int mid_write = 0;
  // A write in progress is caught within a few tries (each run is about a second).
  for (int attempt = 0; attempt < 8 && mid_write < 2; ++attempt) {
    const KillPoint at = attempt % 2 == 0 ? KillPoint{KillPoint::kTempAppears}
                                          : KillPoint{KillPoint::kTempHolds, {}, 1u << 20};
    const KillOutcome r = run_and_kill(quantize_to(out), out, at);
    if (r.killed && r.mid_write) {
      ++mid_write;
      EXPECT_FALSE(fs::exists(out)) << "killed " << at.describe() << ": a file at the output path";
    }
    // A run that finished before its kill wrote the whole file: start again without it.
    if (!r.killed) {
      EXPECT_EQ(r.exit_code, 0);
    }
    std::error_code ec;
    fs::remove(out, ec);
    for (const std::string& t : temp_files(out)) fs::remove(t);
  }
  EXPECT_GE(mid_write, 1) << "no kill landed while the temp file existed";
}

TEST_F(AtomicOutput, DumpWritesItsJsonAtomically) {
  const std::string out = dir_->path("logits.json");
  const auto r =
      run_cli("dump -m " + quote(model()) + " --ids 1,5,9 --name logits -o " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<uint8_t> bytes = test::read_bytes(out);
  const auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
  EXPECT_EQ(j["name"], "logits");
  EXPECT_TRUE(temp_files(out).empty());
  // An output it cannot create is an error naming it (std::ofstream failed silently, exit 0).
  const std::string bad = dir_->path("no/such/dir/logits.json");
  test::expect_clean_error(
      run_cli("dump -m " + quote(model()) + " --ids 1,5,9 --name logits -o " + quote(bad)),
      {bad + ".tmp.", "cannot create"});
}

}  // namespace
}  // namespace mcmoe
