#!/usr/bin/env bash
# Expert reduction table on ../shared/models/mixtral-tiny (bench/RESULTS.md §5): reduce the
# F16 model by merging (M-SMoE), REAP pruning, clustering (HC-SMoE-style) and frequency
# pruning at keep 0.75 and 0.5, adaptive and uniform per-layer counts, calibrated on text
# other than the evaluation text; score each file on the first 20,000 tokens of
# wikitext2-valid (PPL, KL to F16, top-1 agreement), count parameters, file size, decode
# speed. Then the best reduction followed by PMQ (calibrate + quantize) against PMQ 2.5
# alone at about the same file size.
#   bash bench/reduce.sh [OUT_DIR]              (default /tmp/mcmoe-reduce)
# BEST=NAME picks the reduced model that goes on to PMQ (default cluster-a-0.75, the best
# of the table);
# PMQ_BITS="3.25 3.5" the expert bit budgets tried on it (the file closest in size to
# PMQ 2.5 alone is the equal-size comparison).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-reduce}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
model=../shared/models/mixtral-tiny
evaltext=../shared/corpus/wikitext2-valid.txt
# Calibration text (never the evaluated text): the first ~120 KB of each other corpus
# file, cut at a line end: Grimm's fairy tales, tiny Shakespeare, TinyStories (the whole
# 30 KB sample) and War and Peace in Russian; 389,646 bytes. The same mix as
# `CALIB=mix bash bench/quality.sh`.
calib=$out/calib-mix.txt
source bench/calib_mix.sh
make_calib_mix "$calib"
f16=$out/f16.gguf
[ -f "$f16" ] || $mc convert "$model" --type f16 -o "$f16" > /dev/null

# 1. Reductions: reduce's defaults, 32 calibration windows of 512 tokens.
names=()
for keep in 0.75 0.5; do
  for method in merge prune cluster frequency; do
    for per in adaptive uniform; do
      name=$method-${per:0:1}-$keep
      names+=("$name")
      [ -f "$out/$name.gguf" ] || $mc reduce -m "$f16" -f "$calib" --method $method --keep $keep --per-layer $per \
        -o "$out/$name.gguf" > "$out/$name.reduce.log" 2> /dev/null
    done
  done
done

# 2. PMQ 2.5 alone (bench/quality.sh's command), and PMQ on the best reduction at budgets
# that bring its file to about the same size.
best=${BEST:-cluster-a-0.75}
[ -f "$out/stats-f16.json" ] || $mc calibrate -m "$f16" -f "$calib" --samples 64 --seq 512 -o "$out/stats-f16.json" > /dev/null 2>&1
[ -f "$out/pmq-2.5.gguf" ] || $mc quantize -m "$f16" --stats "$out/stats-f16.json" --bits 2.5 -o "$out/pmq-2.5.gguf" > "$out/pmq-2.5.log" 2>&1
[ -f "$out/stats-$best.json" ] || $mc calibrate -m "$out/$best.gguf" -f "$calib" --samples 64 --seq 512 -o "$out/stats-$best.json" > /dev/null 2>&1
pmq_rows=()
for bits in ${PMQ_BITS:-2.5 3.25 3.5}; do
  # Above 3 average bits the widths 2, 3, 4 are the candidates (1-bit experts are not needed).
  cands=1,2,3
  awk "BEGIN{exit !($bits > 3)}" && cands=2,3,4
  name=$best-pmq-$bits
  pmq_rows+=("$name")
  [ -f "$out/$name.gguf" ] || $mc quantize -m "$out/$best.gguf" --stats "$out/stats-$best.json" --bits $bits \
    --candidates $cands -o "$out/$name.gguf" > "$out/$name.log" 2>&1
done

row() {  # label, file
  local label=$1 file=$2
  local j params size
  j=$($mc ppl -m "$file" -f "$evaltext" --max-tokens 20000 --json --kl-base "$f16" 2> /dev/null)
  params=$($mc inspect "$file" | sed -n 's/^total: [0-9]* tensors, \([0-9]*\) parameters.*/\1/p')
  size=$(stat -L -c %s "$file")
  python3 - "$label" "$size" "$params" "$j" <<'PY'
import json, sys
label, size, params, j = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
print(f"| {label} | {j['ppl']:.4f} | {j['kl_mean']:.5f} | {j['top1_agree']:.4f} | {params/1e6:.2f} M | {size/2**20:.2f} |")
PY
}
{
  echo "| model | PPL | KL to F16 | top-1 | parameters | MiB |"
  echo "|---|---|---|---|---|---|"
  row F16 "$f16"
  for n in "${names[@]}"; do row "$n" "$out/$n.gguf"; done
  row pmq-2.5 "$out/pmq-2.5.gguf"
  for n in "${pmq_rows[@]}"; do row "$n" "$out/$n.gguf"; done
} | tee "$out/table.md"

# 3. Decode speed: the best of 5 repetitions, every model measured twice in two passes
# over the list (noisy: the machine is shared, and a 6-layer d=256 model decodes a token
# in about a millisecond).
speed() {
  $mc bench -m "$out/$1.gguf" --threads 2 --prompt-tokens 64 --gen-tokens 256 --reps 5 --no-bandwidth 2> /dev/null |
    sed -n 's/^decode [0-9]* tokens: \([0-9.]*\) tok\/s, \([0-9.]*\) MB.*/\1 \2/p'
}
all=(f16 "${names[@]}" pmq-2.5 "${pmq_rows[@]}")
declare -A pass1
for n in "${all[@]}"; do pass1[$n]=$(speed "$n"); done
{
  echo "| model | decode tok/s, pass 1 | pass 2 | MB weights/token |"
  echo "|---|---|---|---|"
  for n in "${all[@]}"; do
    read -r t1 mb <<< "${pass1[$n]}"
    read -r t2 _ <<< "$(speed "$n")"
    echo "| $n | $t1 | $t2 | $mb |"
  done
} | tee "$out/speed.md"
