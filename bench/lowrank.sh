#!/usr/bin/env bash
# MC-SMoE stage 2 (mcmoe lowrank) on ../shared/models/mixtral-tiny: factor every expert
# matrix as L·R + S at two ranks, calibrated on text other than the evaluation text, and
# score each file on the first 20,000 tokens of wikitext2-valid (PPL, KL to the original,
# top-1 agreement), with parameter count, file size and decode speed.
#   bash bench/lowrank.sh [OUT_DIR]                  (default /tmp/mcmoe-lowrank)
# RANKS="32 128", SPARSE_ROWS=16, TYPE=f16|q8_0, SVD=plain|whitened choose the variants.
# MERGED=FILE.gguf also factors that model (e.g. `mcmoe reduce --method merge --keep 0.75`)
# and scores it against the same original.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-lowrank}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
model=../shared/models/mixtral-tiny
evaltext=../shared/corpus/wikitext2-valid.txt
# Calibration: ~120 KB from each of the other corpora (fairy tales, Shakespeare, children's
# stories, Russian prose), cut at line ends: the same "mix" as bench/quality.sh CALIB=mix.
calib=$out/calib-mix.txt
source bench/calib_mix.sh
make_calib_mix "$calib"
ranks=${RANKS:-"32 128"}
rows=${SPARSE_ROWS:-16}
type=${TYPE:-f16}
svd=${SVD:-plain}   # plain | whitened (see mcmoe lowrank --svd)

[ -f "$out/original-f16.gguf" ] || $mc convert "$model" --type f16 -o "$out/original-f16.gguf" > /dev/null
inputs=("original:$model")
[ -n "${MERGED:-}" ] && inputs+=("merged:$MERGED")
files=("$out/original-f16.gguf")
[ -n "${MERGED:-}" ] && files+=("$MERGED")
for entry in "${inputs[@]}"; do
  name=${entry%%:*}; src=${entry#*:}
  for r in $ranks; do
    f="$out/$name-r$r-s$rows-$type-$svd.gguf"
    [ -f "$f" ] || $mc lowrank -m "$src" -f "$calib" --rank "$r" --sparse-rows "$rows" --type "$type" --svd "$svd" \
      --samples 64 --seq 512 -o "$f" > "$f.lowrank.log"
    files+=("$f")
  done
done

printf "| file | PPL | KL mean | KL p99 | top-1 | params | file MiB | decode tok/s |\n|---|---|---|---|---|---|---|---|\n"
for f in "${files[@]}"; do
  ppl=$($mc ppl -m "$f" -f "$evaltext" --ctx 512 --max-tokens 20000 --kl-base "$model" 2>/dev/null | tail -2)
  p=$(echo "$ppl" | sed -n 's/^ppl \([0-9.]*\) over.*/\1/p')
  kl=$(echo "$ppl" | sed -n 's/.*KL(base||model) mean \([0-9.]*\) p99 \([0-9.]*\).*/\1 | \2/p')
  top=$(echo "$ppl" | sed -n 's/.*top-1 agreement \([0-9.]*\).*/\1/p')
  params=$($mc inspect "$f" | sed -n 's/^total: [0-9]* tensors, \([0-9]*\) parameters.*/\1/p')
  mib=$(awk "BEGIN { printf \"%.2f\", $(stat -c %s "$f") / 1048576 }")
  tok=$($mc bench -m "$f" --threads 2 --prompt-tokens 512 --gen-tokens 128 --reps 3 --no-bandwidth |
        sed -n 's/^decode [0-9]* tokens: \([0-9.]*\) tok\/s.*/\1/p')
  echo "| $(basename "$f") | $p | $kl | $top | $params | $mib | $tok |"
done
