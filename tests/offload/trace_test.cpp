// Routing traces (offload/trace.h): record_trace on a synthetic model gives consistent rows,
// windows restart the session, write_trace / read_trace round-trip (to 1e-6 here; bit-exact in
// bug_regressions_test.cpp), and every kind of malformed file gives an Error naming the file
// and the line.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "offload/offload_test_util.h"
#include "offload/expert_layout.h"
#include "offload/trace.h"
#include "offload/trace_test_util.h"

namespace mcmoe::offload {
namespace {

using test::expect_equal;
using test::hand_trace;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// Writes `text`, reads it back: an Error whose message holds every fragment.
void expect_read_error(const test::TempDir& dir, const std::string& text, const std::vector<std::string>& fragments) {
  const std::string path = dir.path("bad.trace");
  std::ofstream(path) << text;
  try {
    read_trace(path);
    ADD_FAILURE() << "no error for:\n" << text.substr(0, 400);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "does not name the file: " << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
}

TEST(Trace, HandTraceRoundTrips) {
  test::TempDir dir;
  const RoutingTrace t = hand_trace();
  const std::string path = dir.path("t.trace");
  write_trace(t, path);
  expect_equal(read_trace(path), t, 1e-6);
  // Writing what was read gives the same bytes.
  write_trace(read_trace(path), dir.path("t2.trace"));
  EXPECT_EQ(slurp(path), slurp(dir.path("t2.trace")));
}

TraceOptions opts(int ctx, int depth, int m, int64_t max_tokens = 0) {
  TraceOptions o;
  o.ctx = ctx;
  o.depth = depth;
  o.m = m;
  o.threads = 2;
  o.max_tokens = max_tokens;
  return o;
}

// One trace of the small synthetic model, shared by the tests below.
struct Recorded {
  std::unique_ptr<model::Model> m;
  std::vector<int32_t> tokens;
  RoutingTrace t;
};
const Recorded& recorded() {
  static Recorded* r = [] {
    auto* out = new Recorded;
    out->m = model::Model::load(test::small_offload_model());
    std::mt19937 rng(9);
    for (int i = 0; i < 40; ++i) out->tokens.push_back(static_cast<int32_t>(3 + rng() % 290));
    out->t = record_trace(*out->m, out->tokens, opts(16, 2, 3));
    return out;
  }();
  return *r;
}

TEST(Trace, RecordedRowsAreConsistent) {
  const Recorded& r = recorded();
  const RoutingTrace& t = r.t;
  EXPECT_EQ(t.model, test::small_offload_model());
  EXPECT_EQ(t.n_layer, 4);
  EXPECT_EQ(t.n_expert, 8);
  EXPECT_EQ(t.k, 2);
  EXPECT_EQ(t.depth, 2);
  EXPECT_EQ(t.m, 3);
  EXPECT_EQ(t.tokens, r.tokens);
  EXPECT_EQ(t.expert_bytes, expert_cache_bytes(*r.m));
  for (uint64_t b : t.expert_bytes) EXPECT_EQ(b, t.expert_bytes[0]);  // one type, one shape
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    for (int l = 0; l < t.n_layer; ++l) {
      const auto pick = t.pick(i, l);
      const auto prob = t.prob(i, l);
      double sum = 0;
      for (float p : prob) sum += p;
      EXPECT_NEAR(sum, 1.0, 1e-4);
      ASSERT_TRUE(pick[0] >= 0 && pick[0] < 8 && pick[1] >= 0 && pick[1] < 8 && pick[0] != pick[1]);
      // Best first, and no other expert more probable than the second pick.
      EXPECT_GE(prob[pick[0]], prob[pick[1]]);
      for (int e = 0; e < 8; ++e) {
        if (e != pick[0] && e != pick[1]) {
          EXPECT_LE(prob[e], prob[pick[1]]);
        }
      }
      for (int a = 1; a <= t.depth; ++a) {
        const auto p = t.prediction(i, l, a);
        for (int j = 0; j < t.m; ++j) {
          if (l + a >= t.n_layer) {
            EXPECT_EQ(p[j], -1);
            continue;
          }
          EXPECT_TRUE(p[j] >= 0 && p[j] < 8);
          for (int q = 0; q < j; ++q) EXPECT_NE(p[q], p[j]);
        }
      }
    }
  }
}

TEST(Trace, WindowsRestartTheSession) {
  // ctx 16: tokens 16..31 are traced from an empty cache, as if they were the whole text.
  const Recorded& r = recorded();
  const std::vector<int32_t> second(r.tokens.begin() + 16, r.tokens.begin() + 32);
  const RoutingTrace w = record_trace(*r.m, second, opts(16, 2, 3));
  const size_t per_tok = static_cast<size_t>(r.t.n_layer) * r.t.k;
  EXPECT_TRUE(std::equal(w.picks.begin(), w.picks.end(), r.t.picks.begin() + 16 * per_tok));
  const RoutingTrace cut = record_trace(*r.m, r.tokens, opts(16, 1, 2, 5));
  EXPECT_EQ(cut.n_tokens(), 5);
  EXPECT_TRUE(std::equal(cut.picks.begin(), cut.picks.end(), r.t.picks.begin()));
  EXPECT_THROW(record_trace(*r.m, {}, opts(16, 2, 3)), Error);
  EXPECT_THROW(record_trace(*r.m, r.tokens, opts(16, 0, 3)), Error);
  EXPECT_THROW(record_trace(*r.m, r.tokens, opts(16, 2, 9)), Error);
}

TEST(Trace, RecordedTraceRoundTrips) {
  test::TempDir dir;
  const std::string path = dir.path("rec.trace");
  write_trace(recorded().t, path);
  expect_equal(read_trace(path), recorded().t, 1e-6);
}

TEST(Trace, MalformedFilesNameFileAndLine) {
  test::TempDir dir;
  const RoutingTrace t = hand_trace();  // 3 tokens x 2 layers: rows on lines 4..9
  const std::string good_path = dir.path("good.trace");
  write_trace(t, good_path);
  const std::vector<std::string> good = lines_of(slurp(good_path));
  ASSERT_EQ(good.size(), 9u);
  auto edited = [&](int line_no, const std::string& text) {
    std::vector<std::string> l = good;
    l[line_no - 1] = text;
    return join(l);
  };
  // Replaces the `field`-th space-separated field of line `line_no`.
  auto field_set = [&](int line_no, size_t field, const std::string& v) {
    std::istringstream in(good[line_no - 1]);
    std::vector<std::string> f;
    for (std::string w; in >> w;) f.push_back(w);
    f.at(field) = v;
    std::string s;
    for (const auto& w : f) s += (s.empty() ? "" : " ") + w;
    return edited(line_no, s);
  };

  expect_read_error(dir, "", {"not an mcmoe routing trace"});
  expect_read_error(dir, edited(1, "# mcmoe routing trace v2"), {"not an mcmoe routing trace"});
  expect_read_error(dir, edited(2, "{not json"), {"line 2"});
  expect_read_error(dir, edited(2, R"({"model":"x","n_layer":2})"), {"line 2"});
  expect_read_error(dir, join({good[0]}), {"line 2"});  // header missing
  {
    std::string h = good[1];
    h.replace(h.find("\"k\":2"), 5, "\"k\":4");  // k > n_expert
    expect_read_error(dir, edited(2, h), {"line 2"});
  }
  {
    std::string h = good[1];
    h.replace(h.find("\"n_tokens\":3"), 12, "\"n_tokens\":-1");
    expect_read_error(dir, edited(2, h), {"line 2"});
  }
  {
    std::string h = good[1];
    h.replace(h.find("[4096,"), 6, "[");  // expert_bytes one short
    expect_read_error(dir, edited(2, h), {"line 2", "expert_bytes"});
  }
  // Rows: "tok layer | pick pick | w w | p p p | pred pred".
  std::vector<std::string> cut(good.begin(), good.end() - 1);
  expect_read_error(dir, join(cut), {"truncated", "line 9"});
  cut = std::vector<std::string>(good.begin(), good.begin() + 3);
  expect_read_error(dir, join(cut), {"truncated", "line 4"});
  expect_read_error(dir, edited(9, good[8].substr(0, good[8].size() / 2)), {"line 9"});
  expect_read_error(dir, field_set(5, 3, "3"), {"line 5", "expert id"});    // pick = n_expert
  expect_read_error(dir, field_set(5, 4, "-2"), {"line 5", "expert id"});   // below -1
  expect_read_error(dir, field_set(7, 3, "x"), {"line 7"});
  expect_read_error(dir, field_set(4, 14, "3"), {"line 4", "expert id"});   // a prediction
  expect_read_error(dir, field_set(6, 7, "nanx"), {"line 6"});              // a weight
  expect_read_error(dir, field_set(6, 2, "#"), {"line 6", "|"});
  expect_read_error(dir, field_set(9, 1, "0"), {"line 9", "layer 1"});
  try {
    read_trace(dir.path("missing.trace"));
    ADD_FAILURE() << "no error for a missing trace";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path("missing.trace")), std::string::npos) << e.what();
  }
  // The unedited file still reads.
  expect_equal(read_trace(good_path), read_trace(good_path), 0);
}

}  // namespace
}  // namespace mcmoe::offload
