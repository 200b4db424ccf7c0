#!/usr/bin/env bash
# Regenerates the model-family golden fixtures of tests/model/family_golden_test.cpp: small
# random checkpoints in each family's real Hugging Face layout, made and evaluated by the
# PyTorch reference ../shared/tools/moe_reference.py (Debian python3-torch), never by mcmoe.
#
#   bash tests/data/families/make_fixtures.sh            (from the repository root)
#
# Each case directory gets config.json + model.safetensors (F32, or F16 for the *_f16 cases)
# and reference.json: {"ids", "logits" (every position), "prompt", "prompt_ids", "new_ids"
# (16 greedy tokens)}. The tokenizer is tokenizer.model here: a 384-piece SentencePiece BPE
# with byte fallback and identity normalisation, trained on the first 400 kB of
# ../shared/corpus/tinystories-sample.txt with the `sentencepiece` Python package:
#   SentencePieceTrainer.train(vocab_size=384, model_type="bpe", byte_fallback=True,
#     character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, split_digits=True,
#     normalization_rule_name="identity")
set -euo pipefail
cd "$(dirname "$0")"
REF=${REF:-../../../../shared/tools/moe_reference.py}
PY=${PY:-/usr/bin/python3}
IDS=1,281,333,383,350,300,353,274,343,337,348,339,292,337,366,333
PROMPT="Once upon a time, the little"
RS2='rope_scaling={"type":"yarn","factor":40,"beta_fast":32,"beta_slow":1,"mscale":0.707,"mscale_all_dim":0.707,"original_max_position_embeddings":4096}'
RS3='rope_scaling={"type":"yarn","factor":40,"beta_fast":32,"beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0,"original_max_position_embeddings":4096}'
SMALL=(--hidden 32 --moe-ff 16 --ff 32)

make_case() {  # NAME ARCH DTYPE [random flags...]
  local name=$1 arch=$2 dtype=$3
  shift 3
  local tmp
  tmp=$(mktemp -d)
  cp tokenizer.model "$tmp/"
  "$PY" "$REF" random "$tmp/m" --arch "$arch" --tokenizer "$tmp" --dtype "$dtype" --seed 7 "$@" > /dev/null
  "$PY" "$REF" dump "$tmp/m" --ids "$IDS" --out "$tmp/dump.json"
  "$PY" "$REF" generate "$tmp/m" --prompt "$PROMPT" -n 16 > "$tmp/gen.json"
  mkdir -p "$name"
  cp "$tmp/m/config.json" "$tmp/m/model.safetensors" "$name/"
  "$PY" - "$tmp/dump.json" "$tmp/gen.json" "$name/reference.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
out = {"ids": d["ids"], "logits": [[float("%.6g" % v) for v in row] for row in d["logits"]],
       "prompt": g["prompt"], "prompt_ids": g["prompt_ids"], "new_ids": g["new_ids"]}
json.dump(out, open(sys.argv[3], "w"), separators=(",", ":"))
PY
  rm -rf "$tmp"
  echo "$name: $(du -sh "$name" | cut -f1)"
}

make_case qwen3moe_a qwen3_moe f32 "${SMALL[@]}" --head-dim 16
make_case qwen3moe_b qwen3_moe f32 "${SMALL[@]}" --layers 3 --heads 8 --kv-heads 2 --experts 6 --top-k 3 \
  --set norm_topk_prob=false --set attention_bias=true
make_case olmoe_a olmoe f32 "${SMALL[@]}"
make_case olmoe_b olmoe f32 "${SMALL[@]}" --kv-heads 4 --experts 4 --top-k 1 --set clip_qkv=0.3
make_case deepseek_v2_a deepseek_v2 f32 "${SMALL[@]}" --layers 3
make_case deepseek_v2_b deepseek_v2 f32 "${SMALL[@]}" --layers 3 --experts 16 --top-k 4 --set q_lora_rank=24 \
  --set topk_method='"group_limited_greedy"' --set n_group=4 --set topk_group=2 --set "$RS2" \
  --set max_position_embeddings=163840 --set first_k_dense_replace=0
make_case deepseek_v3_a deepseek_v3 f32 "${SMALL[@]}" --layers 3 --experts 16 --top-k 3 --set "$RS3" \
  --set max_position_embeddings=163840
make_case deepseek_v3_b deepseek_v3 f32 "${SMALL[@]}" --layers 4 --set n_group=1 --set topk_group=1 \
  --set norm_topk_prob=false --set routed_scaling_factor=1.5 --set first_k_dense_replace=2 --set kv_lora_rank=48 \
  --set qk_rope_head_dim=16 --set qk_nope_head_dim=8 --set v_head_dim=24
make_case glm4moe_a glm4_moe f32 "${SMALL[@]}" --head-dim 16
make_case glm4moe_b glm4_moe f32 "${SMALL[@]}" --layers 3 --hidden 48 --heads 6 --kv-heads 2 --head-dim 16 \
  --experts 8 --top-k 2 --set n_group=2 --set topk_group=1 --set use_qk_norm=false \
  --set partial_rotary_factor=0.25 --set first_k_dense_replace=2 --set routed_scaling_factor=2.0
make_case gpt_oss_a gpt_oss f32 "${SMALL[@]}" --head-dim 8
make_case gpt_oss_b gpt_oss f32 "${SMALL[@]}" --layers 3 --heads 8 --kv-heads 2 --head-dim 8 --experts 4 \
  --set sliding_window=3
make_case granitemoe_a granitemoe f32 "${SMALL[@]}"
make_case granitemoe_b granitemoe f32 "${SMALL[@]}" --layers 3 --experts 6 --top-k 3 \
  --set tie_word_embeddings=false --set attention_bias=true
# F16 checkpoints: the converted F16 GGUF is compared at 1e-3.
make_case qwen3moe_f16 qwen3_moe f16 "${SMALL[@]}" --head-dim 16
make_case olmoe_f16 olmoe f16 "${SMALL[@]}"
make_case deepseek_v3_f16 deepseek_v3 f16 "${SMALL[@]}" --layers 3 --experts 16 --top-k 3 --set "$RS3" \
  --set max_position_embeddings=163840
make_case glm4moe_f16 glm4_moe f16 "${SMALL[@]}" --head-dim 16
make_case gpt_oss_f16 gpt_oss f16 "${SMALL[@]}" --head-dim 8
make_case granitemoe_f16 granitemoe f16 "${SMALL[@]}"

# gpt-oss with its experts in the released MXFP4 layout (make_mxfp4.py): gpt_oss_mxfp4 holds
# *_blocks / *_scales, gpt_oss_mxfp4_float the same model with the dequantized experts in F32,
# and reference.json the reference's logits of the latter. Rows of 64: whole MXFP4 blocks.
tmp=$(mktemp -d)
cp tokenizer.model "$tmp/"
"$PY" "$REF" random "$tmp/m" --arch gpt_oss --tokenizer "$tmp" --dtype f32 --seed 7 --hidden 64 --moe-ff 64 \
  --ff 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 16 --experts 4 --top-k 2 > /dev/null
"$PY" make_mxfp4.py "$tmp/m" gpt_oss_mxfp4 gpt_oss_mxfp4_float
"$PY" "$REF" dump gpt_oss_mxfp4_float --ids "$IDS" --out "$tmp/dump.json"
"$PY" - "$tmp/dump.json" gpt_oss_mxfp4/reference.json <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
json.dump({"ids": d["ids"], "logits": [[float("%.6g" % v) for v in row] for row in d["logits"]]}, open(sys.argv[2], "w"),
          separators=(",", ":"))
PY
rm -rf "$tmp"
echo "gpt_oss_mxfp4: $(du -sh gpt_oss_mxfp4 | cut -f1), gpt_oss_mxfp4_float: $(du -sh gpt_oss_mxfp4_float | cut -f1)"
