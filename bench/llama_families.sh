#!/usr/bin/env bash
# The model families both ways against llama.cpp, on random checkpoints of the PyTorch
# reference (../shared/tools/moe_reference.py, Debian python3-torch):
#   mcmoe's GGUF in llama.cpp: `mcmoe convert` → llama_logits (logits and 16 greedy ids) vs
#     the reference's logits and mcmoe's own greedy ids on the same file;
#   llama.cpp's layout in mcmoe: ../shared/tools/hf_to_gguf_ref.py → mcmoe vs llama_logits.
# Needs, built outside this repository from llama.cpp's public source (c392e50 was used):
#   LLAMA_LOGITS=/path/to/llama_logits (../shared/tools/llama_logits.cpp against libllama)
#   GGUF_PY=/path/to/llama.cpp/gguf-py
#   bash bench/llama_families.sh [OUT_DIR]
# The shapes stay inside what llama.cpp c392e50 runs: DeepSeek with YaRN keys and (V2) a q
# LoRA or 27 layers, no expert groups there; OLMoE with as many key/value heads as heads.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLAMA_LOGITS:?set LLAMA_LOGITS}"
: "${GGUF_PY:?set GGUF_PY}"
out=${1:-/tmp/mcmoe-llama-families}
mkdir -p "$out"
PY=${PY:-/usr/bin/python3}
REF=../shared/tools/moe_reference.py
IDS=1,281,333,383,350,300,353,274,343,337,348,339,292,337,366,333
RS2='rope_scaling={"type":"yarn","factor":40,"beta_fast":32,"beta_slow":1,"mscale":0.707,"mscale_all_dim":0.707,"original_max_position_embeddings":4096}'
RS3='rope_scaling={"type":"yarn","factor":40,"beta_fast":32,"beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0,"original_max_position_embeddings":4096}'
cp tests/data/families/tokenizer.model "$out/"

compare() {  # REF_JSON GOT_JSON → "max relative error, argmax agreement"
  "$PY" - "$1" "$2" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
A = a["logits"]; B = b["logits"] if "logits" in b else b["data"]
mx = max(abs(v) for r in A for v in r)
err = max(abs(x - y) for r, s in zip(A, B) for x, y in zip(r, s))
agree = sum(max(range(len(r)), key=r.__getitem__) == max(range(len(s)), key=s.__getitem__) for r, s in zip(A, B))
print(f"{err / mx:.2g} | {agree}/{len(A)}", end="")
PY
}

run_case() {  # NAME ARCH [random flags...]
  local name=$1 arch=$2
  shift 2
  local d="$out/$name"
  "$PY" "$REF" random "$d" --arch "$arch" --tokenizer "$out" --dtype f32 --seed 5 "$@" > /dev/null
  "$PY" "$REF" dump "$d" --ids "$IDS" --out "$d.ref.json"
  ./build/mcmoe convert "$d" -o "$d.mcmoe.gguf" --type f32 > /dev/null 2>&1
  "$LLAMA_LOGITS" "$d.mcmoe.gguf" "$IDS" --greedy 16 --threads 2 > "$d.llama-on-mcmoe.json" 2> /dev/null
  # 16 greedy ids after the same prompt ids: llama.cpp's and mcmoe's, on mcmoe's file.
  local llama_ids ours
  llama_ids=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["greedy"]["ids"])' "$d.llama-on-mcmoe.json")
  ./build/mcmoe dump -m "$d.mcmoe.gguf" --ids "$IDS" --name logits --greedy 16 -o "$d.mcmoe-greedy.json" 2> /dev/null
  ours=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["greedy"])' "$d.mcmoe-greedy.json")
  PYTHONPATH="$GGUF_PY" "$PY" ../shared/tools/hf_to_gguf_ref.py "$d" "$d.llama-layout.gguf" > /dev/null 2>&1
  "$LLAMA_LOGITS" "$d.llama-layout.gguf" "$IDS" --threads 2 > "$d.llama-on-layout.json" 2> /dev/null
  ./build/mcmoe dump -m "$d.llama-layout.gguf" --ids "$IDS" --name logits -o "$d.mcmoe-on-layout.json" 2> /dev/null
  local same="no"
  [ "$llama_ids" == "$ours" ] && same="yes"
  echo "| $name | $(compare "$d.ref.json" "$d.llama-on-mcmoe.json") | $same | $(compare "$d.llama-on-layout.json" "$d.mcmoe-on-layout.json") |"
}

echo "| model | llama.cpp on mcmoe's GGUF vs reference: max rel. error, argmax | same 16 greedy ids as mcmoe | mcmoe on llama.cpp's layout vs llama.cpp: max rel. error, argmax |"
echo "|---|---|---|---|"
run_case deepseek2-v2 deepseek_v2 --layers 3 --set q_lora_rank=16 --set "$RS2" --set max_position_embeddings=163840
run_case deepseek2-v2-lite deepseek_v2 --layers 27 --set "$RS2" --set max_position_embeddings=163840
run_case deepseek2-v3 deepseek_v3 --layers 3 --experts 16 --top-k 3 --set n_group=1 --set topk_group=1 --set "$RS3" \
  --set max_position_embeddings=163840
run_case olmoe olmoe --kv-heads 4
run_case granitemoe granitemoe
run_case granitemoe-untied granitemoe --set tie_word_embeddings=false --set attention_bias=true
