#!/usr/bin/env bash
# Speed of llama.cpp's i-quants and of MXFP4 (bench/RESULTS.md §7) on bench/speed.sh's 2.25 B
# synthetic Mixtral, 2 threads, mcmoe beside llama.cpp on the same file in one run:
#  - IQ2_XXS, IQ3_S and IQ4_XS files are made by llama-quantize from the model's F16 form
#    (llama.cpp's own type mix for each: attention and output in other types), with an
#    importance matrix from llama-imatrix (4 × 512 tokens of wikitext2 and 6 × 512 of the
#    Russian text, combined; IQ2_XXS needs one; the same matrix serves all three);
#  - the MXFP4 file by `mcmoe synth --type mxfp4` (every matrix MXFP4; llama.cpp builds without
#    MXFP4, such as c392e50, cannot read it, and their row says so);
#  - the same model in Q4_0 (mcmoe synth), the reference point of both engines on this host.
# Each: `mcmoe bench` (prefill 512, decode 128, its read-bandwidth roofline measured in the same
# run) and `llama-bench -p 512 -n 128`.
#   LLAMA_BIN=/path/to/llama.cpp/build/bin bash bench/quant_speed.sh [OUT_DIR]
# LLAMA_BIN holds llama-imatrix, llama-quantize and llama-bench, built from llama.cpp's public
# source outside this repository; without it only the MXFP4 row runs. MCMOE overrides the
# binary (default ./build/mcmoe). Needs ~8 GB of disk in OUT_DIR (default /tmp/mcmoe-quant-speed).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-quant-speed}
mcmoe=${MCMOE:-./build/mcmoe}
mkdir -p "$out"
shape=(--arch mixtral --layers 10 --dim 2048 --ff 4096 --experts 8 --top-k 2 --vocab 32000 --heads 16 --kv-heads 4)

files=()
if [ -n "${LLAMA_BIN:-}" ]; then
  f16="$out/synth-f16.gguf"
  [ -f "$f16" ] || "$mcmoe" synth "${shape[@]}" --type f16 -o "$f16"
  # One random-router expert of some layers gets no token from either text alone, and
  # llama-imatrix drops a stacked tensor with any expert unseen: two texts, combined.
  imatrix="$out/imatrix.dat"
  if [ ! -f "$imatrix" ]; then
    head -c 300000 ../shared/corpus/war-and-peace-ru.txt > "$out/ru.txt"
    "$LLAMA_BIN/llama-imatrix" -m "$f16" -f ../shared/corpus/wikitext2-valid.txt -c 512 --chunks 4 -t 2 \
      -o "$out/imatrix-en.dat" > "$out/imatrix-en.log" 2>&1
    "$LLAMA_BIN/llama-imatrix" -m "$f16" -f "$out/ru.txt" -c 512 --chunks 6 -t 2 -o "$out/imatrix-ru.dat" \
      > "$out/imatrix-ru.log" 2>&1
    "$LLAMA_BIN/llama-imatrix" -m "$f16" --in-file "$out/imatrix-en.dat" --in-file "$out/imatrix-ru.dat" \
      -o "$imatrix" > "$out/imatrix.log" 2>&1
  fi
  for type in IQ2_XXS IQ3_S IQ4_XS; do
    f="$out/synth-${type,,}.gguf"
    [ -f "$f" ] || "$LLAMA_BIN/llama-quantize" --imatrix "$imatrix" "$f16" "$f" "$type" 2 > "$out/quantize-$type.log" 2>&1
    files+=("$f")
  done
fi
# MXFP4, and Q4_0 (the type both engines have read longest) as this host's point of reference.
for type in mxfp4 q4_0; do
  f="$out/synth-$type.gguf"
  [ -f "$f" ] || "$mcmoe" synth "${shape[@]}" --type "$type" -o "$f"
  files+=("$f")
done

for f in "${files[@]}"; do
  echo "== $f ($(stat -c %s "$f") bytes)"
  "$mcmoe" inspect "$f" | grep -iE "type|tensors" | head -8 || true
  echo "== mcmoe bench (2 threads)"
  "$mcmoe" bench -m "$f" --threads 2 --prompt-tokens 512 --gen-tokens 128 --reps 3
  if [ -n "${LLAMA_BIN:-}" ]; then
    echo "== llama-bench (2 threads)"
    "$LLAMA_BIN/llama-bench" -m "$f" -t 2 -p 512 -n 128 -r 3 -o md 2>&1 | grep -E "^\||error|failed" ||
      echo "llama-bench could not read $f"
  fi
done
