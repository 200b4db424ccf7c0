#!/usr/bin/env bash
# Regenerates the llama.cpp fixtures of tests/model/family_llama_test.cpp: GGUFs laid out as
# llama.cpp's own converter lays them out, with the logits and greedy ids llama.cpp itself
# computes on them. Nothing here builds llama.cpp; it needs, built outside the repository
# from llama.cpp's public source (commit c392e50 was used):
#   GGUF_PY=/path/to/llama.cpp/gguf-py            for ../shared/tools/hf_to_gguf_ref.py
#   LLAMA_LOGITS=/path/to/llama_logits            ../shared/tools/llama_logits.cpp built against libllama
# and the PyTorch reference (Debian python3-torch) for the random checkpoints.
#
#   GGUF_PY=... LLAMA_LOGITS=... bash tests/data/families/llama_cpp/make_fixtures.sh
#
# Each case gets model.gguf (F32) and llama.json (llama_logits MODEL IDS --greedy 16: the
# logits of every position and 16 greedy ids after them). The shapes stay inside what
# llama.cpp c392e50 runs: DeepSeek with a q LoRA and YaRN keys, no expert groups; OLMoE
# with as many key/value heads as heads.
set -euo pipefail
cd "$(dirname "$0")"
: "${GGUF_PY:?set GGUF_PY to the gguf-py directory of a llama.cpp checkout}"
: "${LLAMA_LOGITS:?set LLAMA_LOGITS to a llama_logits binary}"
REF=${REF:-../../../../../shared/tools/moe_reference.py}
CONV=${CONV:-../../../../../shared/tools/hf_to_gguf_ref.py}
PY=${PY:-/usr/bin/python3}
IDS=1,281,333,383,350,300,353,274,343,337,348,339,292,337,366,333
RS2='rope_scaling={"type":"yarn","factor":40,"beta_fast":32,"beta_slow":1,"mscale":0.707,"mscale_all_dim":0.707,"original_max_position_embeddings":4096}'
RS3='rope_scaling={"type":"yarn","factor":40,"beta_fast":32,"beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0,"original_max_position_embeddings":4096}'
SMALL=(--hidden 32 --moe-ff 16 --ff 32)

make_case() {  # NAME ARCH [random flags...]
  local name=$1 arch=$2
  shift 2
  local tmp
  tmp=$(mktemp -d)
  cp ../tokenizer.model "$tmp/"
  "$PY" "$REF" random "$tmp/m" --arch "$arch" --tokenizer "$tmp" --dtype f32 --seed 11 "$@" > /dev/null
  mkdir -p "$name"
  PYTHONPATH="$GGUF_PY" "$PY" "$CONV" "$tmp/m" "$name/model.gguf" --outtype f32
  "$LLAMA_LOGITS" "$name/model.gguf" "$IDS" --greedy 16 --threads 2 > "$tmp/llama.json" 2> /dev/null
  "$PY" - "$tmp/llama.json" "$name/llama.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
j["logits"] = [[float("%.6g" % v) for v in row] for row in j["logits"]]
json.dump(j, open(sys.argv[2], "w"), separators=(",", ":"))
PY
  rm -rf "$tmp"
  echo "$name: $(du -sh "$name" | cut -f1)"
}

make_case deepseek2_v2 deepseek_v2 "${SMALL[@]}" --layers 3 --set q_lora_rank=16 --set "$RS2" --set max_position_embeddings=163840
make_case deepseek2_v3 deepseek_v3 "${SMALL[@]}" --layers 3 --experts 16 --top-k 3 --set n_group=1 --set topk_group=1 \
  --set "$RS3" --set max_position_embeddings=163840
make_case olmoe olmoe "${SMALL[@]}" --kv-heads 4
make_case granitemoe granitemoe "${SMALL[@]}"
