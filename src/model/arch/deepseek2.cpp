// DeepSeek-V2 / V3 (and V2-Lite, R1, Kimi-K2, Moonlight); GGUF architecture "deepseek2".
//
// Multi-head latent attention: an optional q LoRA (q_a → RMSNorm → q_b), kv_a_proj_with_mqa
// giving the compressed latent c_kv and one shared RoPE key k_pe, kv_b expanding the normed
// latent into per-head k_nope and v. RoPE on qk_rope dims only, in DeepSeek's adjacent-pair
// layout (llama.cpp's "norm" rope, no permutation). YaRN's mscale_all_dim multiplies the
// softmax scale by mscale² (llama.cpp: yarn_log_multiplier = 0.1 · mscale_all_dim).
//
// Layers: the first first_k_dense_replace are dense (intermediate_size); then MoE layers
// (every moe_layer_freq-th, 1 in every release) with n_shared_experts always-on experts
// folded into one MLP of n_shared · moe_intermediate_size.
//
// Routing: V2 softmax scores, greedy or group_limited_greedy (keep the topk_group groups
// with the highest maximum score); V3 sigmoid scores + e_score_correction_bias for the
// choice only, noaux_tc (groups ranked by the sum of their two best choices). Both:
// norm_topk_prob, then routed_scaling_factor.
#include <cmath>

#include "format/gguf.h"
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

// mcmoe's own key for the group ranking: llama.cpp has none, and ranks groups by their top-2
// sum; without the key, sigmoid scoring means top-2 sum (V3) and softmax means maximum (V2).
constexpr const char* kGroupSelectKey = "mcmoe.expert_group_select";

void from_hf(const HfConfig& j, const std::string& type, ModelConfig& c) {
  const bool v3 = type == "deepseek_v3";
  c.attention = AttentionKind::Mla;
  MlaConfig& a = c.mla;
  // q_lora_rank: null means no q LoRA (V2-Lite); absent means the config class default.
  a.q_lora_rank = j.json().contains("q_lora_rank") ? j.get<int>("q_lora_rank", 0) : 1536;
  a.kv_lora_rank = j.get<int>("kv_lora_rank");
  a.qk_nope = j.get<int>("qk_nope_head_dim");
  a.qk_rope = j.get<int>("qk_rope_head_dim");
  a.v_dim = j.get<int>("v_head_dim");
  c.head_dim =
      checked_size(j.path(), "qk_nope_head_dim + qk_rope_head_dim", int64_t{a.qk_nope} + a.qk_rope);
  c.head_dim_v = a.v_dim;
  if (c.n_head_kv != c.n_head) {
    fail(
        "{}: num_key_value_heads {} must equal num_attention_heads {} (MLA gives every head its "
        "own k and v)",
        j.path(), c.n_head_kv, c.n_head);
  }
  j.expect<bool>("attention_bias", false, "no released DeepSeek model has attention biases");
  c.rope.n_rot = a.qk_rope;
  c.rope.style = RopeStyle::Interleaved;
  if (c.rope.yarn && j.json()["rope_scaling"].contains("mscale_all_dim")) {
    const auto& mscale = j.json()["rope_scaling"]["mscale_all_dim"];
    if (!mscale.is_number())
      fail("{}: rope_scaling.mscale_all_dim = {} is not a number", j.path(), mscale.dump());
    const float m = mscale.get<float>();
    c.mla_mscale = c.rope.factor > 1.f && m != 0.f ? 0.1f * m * std::log(c.rope.factor) + 1.f : 1.f;
  }

  c.n_expert = j.get<int>("n_routed_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok");
  c.n_ff = j.get<int>("moe_intermediate_size");
  c.n_ff_dense = j.get<int>("intermediate_size");
  c.n_ff_shared = checked_size(j.path(), "n_shared_experts x moe_intermediate_size",
                               int64_t{j.get<int>("n_shared_experts", v3 ? 1 : 2)} * c.n_ff);
  c.n_dense_lead = j.get<int>("first_k_dense_replace", v3 ? 3 : 0);
  c.moe_every = j.get<int>("moe_layer_freq", 1);
  RouterConfig& r = c.router;
  const std::string scoring = j.get<std::string>("scoring_func", v3 ? "sigmoid" : "softmax");
  if (scoring != "softmax" && scoring != "sigmoid")
    fail("{}: scoring_func '{}' (expected softmax or sigmoid)", j.path(), scoring);
  r.score = scoring == "sigmoid" ? ScoreFunc::Sigmoid : ScoreFunc::Softmax;
  const std::string method = j.get<std::string>("topk_method", v3 ? "noaux_tc" : "greedy");
  if (method == "greedy") {
    r.group = GroupSelect::None;
  } else if (method == "group_limited_greedy") {
    r.group = GroupSelect::Max;
  } else if (method == "noaux_tc") {
    r.group = GroupSelect::Top2Sum;
    r.choice_bias = true;
  } else {
    fail(
        "{}: topk_method '{}' is not supported (expected greedy, group_limited_greedy or noaux_tc)",
        j.path(), method);
  }
  r.n_group = j.get<int>("n_group", v3 ? 8 : 1);
  r.topk_group = j.get<int>("topk_group", v3 ? 4 : 1);
  if (r.group != GroupSelect::None && r.n_group <= 1)
    r.group = GroupSelect::None;  // one group: plain top-k
  r.norm_topk = j.get<bool>("norm_topk_prob", v3);
  r.scale = j.get<float>("routed_scaling_factor", v3 ? 2.5f : 1.f);
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  c.attention = AttentionKind::Mla;
  MlaConfig& a = c.mla;
  a.q_lora_rank = k.u32("attention.q_lora_rank", 0);
  a.kv_lora_rank = k.u32("attention.kv_lora_rank");
  a.qk_rope = k.u32("rope.dimension_count");
  if (k.has("attention.key_length_mla")) {
    // llama.cpp's MLA layout (2025 on): written as one shared "MQA" head of kv_lora + rope
    // keys and kv_lora values; the per-head sizes have keys of their own, and kv_b is split.
    c.head_dim = k.u32("attention.key_length_mla");
    c.head_dim_v = k.u32("attention.value_length_mla");
    c.n_head_kv = c.n_head;
    a.split_kv_b = true;
  }
  if (c.n_head_kv != c.n_head) {
    fail(
        "{}: deepseek2.attention.head_count_kv {} differs from head_count {} in a file without "
        "key_length_mla",
        k.path(), c.n_head_kv, c.n_head);
  }
  a.qk_nope = c.head_dim - a.qk_rope;
  a.v_dim = c.head_dim_v;
  if (a.qk_nope <= 0)
    fail("{}: key length {} leaves no room beside {} rope dims", k.path(), c.head_dim, a.qk_rope);
  c.rope.style = RopeStyle::Interleaved;
  c.n_dense_lead = k.u32("leading_dense_block_count", 0);
  c.n_ff = k.u32("expert_feed_forward_length");
  c.n_ff_dense = k.u32("feed_forward_length", 0);
  c.n_ff_shared = checked_size(k.path(), "expert_shared_count x expert_feed_forward_length",
                               int64_t{k.u32("expert_shared_count", 0)} * c.n_ff);
  RouterConfig& r = c.router;
  const float scale = k.f32("expert_weights_scale", 0.f);
  r.scale = scale == 0.f ? 1.f : scale;  // llama.cpp: 0 means no scaling
  r.norm_topk = k.flag("expert_weights_norm", false);
  // llama_expert_gating_func_type: 1 softmax, 2 sigmoid; absent (older V2 files): softmax.
  const int gating = k.u32("expert_gating_func", 1);
  if (gating != 1 && gating != 2)
    fail("{}: deepseek2.expert_gating_func = {} (expected 1 softmax or 2 sigmoid)", k.path(),
         gating);
  r.score = gating == 2 ? ScoreFunc::Sigmoid : ScoreFunc::Softmax;
  r.choice_bias = k.has_tensor(fmt::format("blk.{}.exp_probs_b.bias", c.n_dense_lead));
  r.n_group = k.u32("expert_group_count", 1);
  r.topk_group = k.u32("expert_group_used_count", 1);
  const std::string select =
      k.file().get_string(kGroupSelectKey, r.score == ScoreFunc::Sigmoid ? "top2_sum" : "max");
  if (select != "top2_sum" && select != "max")
    fail("{}: {} = '{}' (expected top2_sum or max)", k.path(), kGroupSelectKey, select);
  r.group = r.n_group <= 1    ? GroupSelect::None
            : select == "max" ? GroupSelect::Max
                              : GroupSelect::Top2Sum;
  if (c.rope.yarn && c.rope.factor > 1.f) {
    // yarn_log_multiplier = 0.1 · mscale_all_dim; DeepSeek's rope keeps unit magnitude
    // (mscale = mscale_all_dim in every release) unless mcmoe recorded otherwise.
    c.mla_mscale = 1.f + k.f32("rope.scaling.yarn_log_multiplier", 0.f) * std::log(c.rope.factor);
    c.rope.attn_factor = static_cast<float>(k.file().get_float(kRopeAttnFactorKey, 1.0));
  }
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  const MlaConfig& a = c.mla;
  if (c.moe_every != 1)
    fail("moe_layer_freq {} has no key in llama.cpp's deepseek2 GGUF; only 1 can be written",
         c.moe_every);
  if (c.n_ff_shared % c.n_ff != 0)
    fail("shared expert width {} is not a multiple of the expert width {}", c.n_ff_shared, c.n_ff);
  w.u32("leading_dense_block_count", c.n_dense_lead);
  if (c.n_ff_dense > 0) w.u32("feed_forward_length", c.n_ff_dense);
  w.u32("expert_feed_forward_length", c.n_ff);
  w.u32("expert_shared_count", c.n_ff_shared / c.n_ff);
  w.f32("expert_weights_scale", c.router.scale);
  w.flag("expert_weights_norm", c.router.norm_topk);
  w.u32("expert_gating_func", c.router.score == ScoreFunc::Sigmoid ? 2 : 1);
  if (a.q_lora_rank > 0) w.u32("attention.q_lora_rank", a.q_lora_rank);
  w.u32("attention.kv_lora_rank", a.kv_lora_rank);
  if (a.split_kv_b) {
    w.u32("attention.key_length", a.latent());
    w.u32("attention.value_length", a.kv_lora_rank);
    w.u32("attention.key_length_mla", a.qk_dim());
    w.u32("attention.value_length_mla", a.v_dim);
    w.u32("attention.head_count_kv", 1);
  } else {
    w.u32("attention.key_length", a.qk_dim());
    w.u32("attention.value_length", a.v_dim);
  }
  if (c.router.group != GroupSelect::None) {
    w.u32("expert_group_count", c.router.n_group);
    w.u32("expert_group_used_count", c.router.topk_group);
    w.unprefixed_str(kGroupSelectKey, c.router.group == GroupSelect::Max ? "max" : "top2_sum");
  }
  if (c.rope.yarn && c.rope.attn_factor != 1.f)
    w.unprefixed_f32(kRopeAttnFactorKey, c.rope.attn_factor);
  // llama.cpp c392e50 requires the key even without YaRN (0 then changes nothing).
  const float log_mul =
      c.rope.yarn && c.rope.factor > 1.f ? (c.mla_mscale - 1.f) / std::log(c.rope.factor) : 0.f;
  w.f32("rope.scaling.yarn_log_multiplier", log_mul);
}

HfSource hf_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  auto layer = [&](const char* suffix) { return HfSource{hf_layer(s.layer, suffix)}; };
  switch (s.kind) {
    case K::AttnQA:
      return layer("self_attn.q_a_proj.weight");
    case K::AttnQANorm:
      return layer("self_attn.q_a_layernorm.weight");
    case K::AttnQB:
      return layer("self_attn.q_b_proj.weight");
    case K::AttnKvAMqa:
      return layer("self_attn.kv_a_proj_with_mqa.weight");
    case K::AttnKvANorm:
      return layer("self_attn.kv_a_layernorm.weight");
    case K::AttnKvB:
      return layer("self_attn.kv_b_proj.weight");
    case K::ChoiceBias:
      return layer("mlp.gate.e_score_correction_bias");
    case K::ShexpGate:
      return layer("mlp.shared_experts.gate_proj.weight");
    case K::ShexpUp:
      return layer("mlp.shared_experts.up_proj.weight");
    case K::ShexpDown:
      return layer("mlp.shared_experts.down_proj.weight");
    default:
      return llama_style_source(c, s);
  }
}

}  // namespace

extern const ArchInfo kDeepseek2Arch{.arch = Arch::Deepseek2,
                                     .gguf_name = "deepseek2",
                                     .hf_model_types = {"deepseek_v2", "deepseek_v3"},
                                     .from_hf = from_hf,
                                     .from_gguf = from_gguf,
                                     .to_gguf = to_gguf,
                                     .hf_source = hf_source};

}  // namespace mcmoe::model::arch
