#!/usr/bin/env bash
# llama.cpp's i-quant and ternary files of ../shared/models/mixtral-tiny, read by mcmoe: for each
# type (IQ2_M is there for its iq2_s tensors: llama-quantize's IQ2_S type writes iq2_xs ones),
# llama-quantize (with an importance matrix from llama-imatrix on the calibration mix,
# never the evaluation text) makes the file from mcmoe's F16 conversion; then
#   - the first 8 greedy ids after a fixed prompt, mcmoe's and llama.cpp's, on that file, and
#     as arbiter where they part, llama.cpp's on the file's weights dequantized to f32 (no
#     activation rounding in either engine's int8 dot products);
#   - mcmoe's PPL, KL to the F16 model and top-1 agreement on the first 20,000 tokens of
#     wikitext2-valid, beside the file size.
# Needs, built outside this repository from llama.cpp's public source (c392e50 was used):
#   LLAMA_BIN=/path/to/llama.cpp/build/bin   (llama-quantize, llama-imatrix)
#   LLAMA_LOGITS=/path/to/llama_logits       (../shared/tools/llama_logits.cpp against libllama)
#   bash bench/llama_quants.sh [OUT_DIR]      (default /tmp/mcmoe-llama-quants)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLAMA_BIN:?set LLAMA_BIN}"
: "${LLAMA_LOGITS:?set LLAMA_LOGITS}"
out=${1:-/tmp/mcmoe-llama-quants}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
model=../shared/models/mixtral-tiny
evaltext=../shared/corpus/wikitext2-valid.txt
source bench/calib_mix.sh
calib=$out/calib-mix.txt
make_calib_mix "$calib"
PROMPT="Once upon a time, in a small village at the edge of the forest,"

f16=$out/mixtral-tiny-F16.gguf
[ -f "$f16" ] || $mc convert "$model" --type f16 -o "$f16" > /dev/null
imat=$out/imatrix.dat
[ -f "$imat" ] || "$LLAMA_BIN/llama-imatrix" -m "$f16" -f "$calib" -o "$imat" -c 512 --chunks 100 -t 2 \
  > "$out/imatrix.log" 2>&1

ids=1,$($mc tokenize -m "$f16" -p "$PROMPT" | tr ' ' ',')  # BOS, then the prompt

echo "| llama-quantize type | expert tensors | MiB | bits/weight | PPL | KL to F16 | top-1 | first 8 greedy ids equal to llama.cpp's | equal to the dequantized weights' (llama.cpp, f32) |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in F16 TQ1_0 TQ2_0 IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ3_XXS IQ3_S IQ4_NL IQ4_XS; do
  f=$out/mixtral-tiny-$t.gguf
  if [ ! -f "$f" ]; then
    flags=(--imatrix "$imat")
    case $t in TQ*) flags=() ;; esac
    "$LLAMA_BIN/llama-quantize" "${flags[@]}" "$f16" "$f" "$t" 2 > "$out/$t.quantize.log" 2>&1
  fi
  "$LLAMA_LOGITS" "$f" "$ids" --greedy 8 --threads 2 > "$out/$t.llama.json" 2> /dev/null
  [ -f "$out/$t-f32.gguf" ] || $mc convert "$f" --type f32 -o "$out/$t-f32.gguf" > /dev/null 2>&1
  "$LLAMA_LOGITS" "$out/$t-f32.gguf" "$ids" --greedy 8 --threads 2 > "$out/$t.f32.llama.json" 2> /dev/null
  $mc dump -m "$f" --ids "$ids" --name logits --greedy 8 -o "$out/$t.mcmoe.json" 2> /dev/null
  j=$($mc ppl -m "$f" -f "$evaltext" --max-tokens 20000 --json --kl-base "$model" 2> /dev/null)
  experts=$($mc inspect "$f" | awk '$1 == "blk.0.ffn_up_exps.weight" {print $2}')
  python3 - "$t $experts" "$(stat -L -c %s "$f")" "$($mc inspect "$f" | sed -n 's/^true bits per weight.*decoder linears \([0-9.]*\)$/\1/p')" \
    "$j" "$out/$t.llama.json" "$out/$t.mcmoe.json" "$out/$t.f32.llama.json" <<'PY'
import json, sys
(t, experts), size, bits, j = sys.argv[1].split(), int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
theirs = json.load(open(sys.argv[5]))["greedy"]["ids"]
ours = json.load(open(sys.argv[6]))["greedy"]
exact = json.load(open(sys.argv[7]))["greedy"]["ids"]
same = "yes" if theirs == ours else f"no: llama.cpp {theirs}, mcmoe {ours}"
arbiter = "both" if theirs == ours == exact else "mcmoe" if ours == exact else "llama.cpp" if theirs == exact else "neither"
print(f"| {t} | {experts} | {size / 2**20:.2f} | {bits} | {j['ppl']:.4f} | {j['kl_mean']:.5f} | {j['top1_agree']:.4f} | {same} | {arbiter} |")
PY
done | tee "$out/table.md"
