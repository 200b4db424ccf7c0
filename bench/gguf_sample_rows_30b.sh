#!/usr/bin/env bash
# What `quantize --format gguf --sample-rows` saves on a large model: one decoder layer of
# Qwen3-30B-A3B's shape (synth --preset qwen3-30b-a3b --layers 1: d 2048, 128 experts of width
# 768, 32 heads; 604 M expert weights, BF16; a 4,096-token vocabulary so the embeddings and
# head, fixed at q8_0, stay small), quantized over candidate TYPES at every share in SHARES.
# Prints the whole run's seconds and the seconds spent quantizing and measuring; the model's
# 48 layers take 48 times the latter (the calibration's forward passes are a small part).
#   bash bench/gguf_sample_rows_30b.sh [OUT_DIR]      SHARES="1 0.125" TYPES=q2_K,q3_K,q4_K
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-gguf-sample-rows-30b}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
shares=${SHARES:-1 0.125}
types=${TYPES:-q2_K,q3_K,q4_K}
label=${LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
model=$out/qwen3-30b-a3b-shape-1-layer-bf16.gguf
[ -f "$model" ] || $mc synth --preset qwen3-30b-a3b --layers 1 --vocab 4096 --type bf16 -o "$model" >/dev/null
source bench/calib_mix.sh
calib=$out/calib-mix.txt
make_calib_mix "$calib"
{
printf "build\tshare\ttypes\tseconds\tquantize_s\tchosen\n"
for s in $shares; do
  log=$out/rows-$s.log
  $mc quantize --format gguf -m "$model" -f "$calib" --samples 16 --seq 512 --types "$types" --bits 3.5 \
    --kl-cost 0 --tensor-type 'token_embd|^output=q8_0' --sample-rows "$s" -o "$out/rows-$s.gguf" >"$log" 2>"$log.err"
  printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$label" "$s" "$types" \
    "$(sed -n 's/.* in \([0-9.]*\) s (.*/\1/p' "$log")" \
    "$(sed -n 's/.*quantizing and measuring matrices \([0-9.]*\) s)$/\1/p' "$log")" \
    "$(awk '$1 ~ /exps\.weight$/ { printf "%s%s=%s", sep, $1, $3; sep = "," }' "$log")"
done
} | tee "$out/sample_rows_30b.tsv"
