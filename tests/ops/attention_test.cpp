// The flash-style attention (sgemm blocks, online softmax, key splits during decode)
// against the double-precision one-(token, head)-at-a-time reference, over the attention
// kinds the families use: MHA, GQA, MQA (MLA's absorbed form), value heads narrower than key
// heads, strided rows, sinks, sliding windows, prefill and decode at long context.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "ops/kv_rows.h"

namespace mcmoe::ops {
namespace {

struct Case {
  const char* name;
  int n_head, n_head_kv, head_dim, head_dim_v;
  int64_t n_tokens, pos0, window;
  bool sinks;
  int64_t k_pad = 0;  // extra values between cache rows (strided, as MLA's latent rows)
  float scale = 0.f;
};

class AttentionCases : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCases, FlashMatchesReference) {
  const Case c = GetParam();
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t ctx = c.pos0 + c.n_tokens;
  const int64_t k_stride = c.n_head_kv * c.head_dim + c.k_pad,
                v_stride = c.n_head_kv * c.head_dim_v + c.k_pad;
  std::vector<float> q(c.n_tokens * c.n_head * c.head_dim), k(ctx * k_stride), v(ctx * v_stride),
      sinks(c.n_head);
  // Large enough logits that a wrong mask, scale or softmax shows.
  for (auto& x : q) x = 1.5f * nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (auto& x : sinks) x = 2.f * nd(rng);
  AttentionParams p;
  p.q = q.data();
  p.k = k.data();
  p.k_stride = k_stride;
  p.v = v.data();
  p.v_stride = v_stride;
  p.n_tokens = c.n_tokens;
  p.pos0 = c.pos0;
  p.n_head = c.n_head;
  p.n_head_kv = c.n_head_kv;
  p.head_dim = c.head_dim;
  p.head_dim_v = c.head_dim_v;
  p.scale = c.scale;
  p.window = c.window;
  p.sinks = c.sinks ? sinks.data() : nullptr;
  std::vector<float> want(c.n_tokens * c.n_head * c.head_dim_v), got(want.size(), NAN),
      with_probs(want.size(), NAN);
  p.out = want.data();
  attention_reference(p);
  ThreadPool pool(2);
  p.out = got.data();
  attention(p, pool);
  // The probability-writing path (ODP) computes the same output.
  std::vector<float> probs(c.n_head * c.n_tokens * ctx);
  p.out = with_probs.data();
  p.probs_out = probs.data();
  attention(p, pool);
  double err = 0, err_probs = 0, mx = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << i;
    err = std::max(err, std::fabs(double{got[i]} - want[i]));
    err_probs = std::max(err_probs, std::fabs(double{with_probs[i]} - want[i]));
    mx = std::max(mx, std::fabs(double{want[i]}));
  }
  // f32 sums over up to a few thousand keys: ~1e-6 relative to the largest output.
  EXPECT_LT(err / mx, 2e-5) << c.name;
  EXPECT_LT(err_probs / mx, 2e-5) << c.name;
  // Each probability row sums to 1 minus what the sink took, and is 0 where masked.
  for (int h = 0; h < c.n_head; ++h) {
    for (int64_t t = 0; t < c.n_tokens; ++t) {
      double sum = 0;
      const int64_t pos = c.pos0 + t;
      for (int64_t j = 0; j < ctx; ++j) {
        const float pr = probs[(h * c.n_tokens + t) * ctx + j];
        const bool visible = j <= pos && (c.window == 0 || pos - j < c.window);
        if (!visible) {
          ASSERT_EQ(pr, 0.f) << c.name << " head " << h << " token " << t << " key " << j;
        }
        sum += pr;
      }
      if (c.sinks) {
        EXPECT_LT(sum, 1.0 + 1e-5);
      } else {
        EXPECT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
}

// An f16 or q8_0 cache: the fast path widens blocks of cached rows, the reference the whole
// cache; both must compute the same attention over the stored values.
TEST(Attention, NarrowCacheTypesMatchReference) {
  for (const DType type : {DType::F16, DType::Q8_0}) {
    for (const bool latent :
         {false, true}) {  // GQA rows, or MLA's latent row shared by keys and values
      const int n_head = latent ? 16 : 8, n_head_kv = latent ? 1 : 2, hd = latent ? 96 : 64,
                dv = latent ? 64 : 64;
      const int64_t pos0 = 700, n = latent ? 1 : 40, ctx = pos0 + n;
      const int64_t k_width = n_head_kv * hd, v_width = n_head_kv * dv;
      std::mt19937 rng(5);
      std::normal_distribution<float> nd(0.f, 1.f);
      std::vector<float> q(n * n_head * hd), k(ctx * k_width), v(ctx * v_width);
      for (auto& x : q) x = nd(rng);
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      std::vector<uint8_t> kc(ctx * row_bytes(type, k_width)), vc(ctx * row_bytes(type, v_width));
      for (int64_t j = 0; j < ctx; ++j) {
        kv_row_from_f32(type, k.data() + j * k_width, k_width,
                        kc.data() + j * row_bytes(type, k_width));
        kv_row_from_f32(type, v.data() + j * v_width, v_width,
                        vc.data() + j * row_bytes(type, v_width));
      }
      AttentionParams p;
      p.q = q.data();
      p.k = kc.data();
      p.v = latent ? kc.data() : vc.data();
      p.v_stride = latent ? k_width : 0;
      p.kv_type = type;
      p.n_tokens = n;
      p.pos0 = pos0;
      p.n_head = n_head;
      p.n_head_kv = n_head_kv;
      p.head_dim = hd;
      p.head_dim_v = dv;
      std::vector<float> want(n * n_head * dv), got(want.size());
      p.out = want.data();
      attention_reference(p);
      ThreadPool pool(2);
      p.out = got.data();
      attention(p, pool);
      double err = 0, mx = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        err = std::max(err, std::fabs(double{got[i]} - want[i]));
        mx = std::max(mx, std::fabs(double{want[i]}));
      }
      EXPECT_LT(err / mx, 2e-5) << dtype_name(type) << (latent ? " latent" : " gqa");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, AttentionCases,
    ::testing::Values(Case{"mha_prefill", 4, 4, 32, 32, 77, 0, 0, false},
                      Case{"gqa_prefill_after_cache", 8, 2, 64, 64, 150, 90, 0, false},
                      Case{"gqa_decode_long", 8, 2, 64, 64, 1, 2999, 0, false},
                      Case{"mqa_latent_decode", 16, 1, 72, 64, 1, 1500, 0, false, 8, 0.05f},
                      Case{"mqa_latent_prefill", 16, 1, 72, 64, 40, 300, 0, false, 8, 0.05f},
                      Case{"mla_naive_shapes", 4, 4, 24, 16, 33, 10, 0, false},
                      Case{"sinks_window_prefill", 8, 2, 16, 16, 200, 0, 7, true},
                      Case{"sinks_window_decode", 8, 2, 16, 16, 1, 900, 128, true},
                      Case{"window_crosses_blocks", 4, 1, 16, 16, 300, 400, 300, false},
                      Case{"sinks_full", 6, 3, 16, 16, 20, 5, 0, true, 0, 0.7f},
                      Case{"few_heads_prefill_long", 2, 2, 32, 32, 10, 1000, 0, false}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mcmoe::ops
