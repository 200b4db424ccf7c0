#!/usr/bin/env bash
# MC-MoE quality table on ../shared/models/mixtral-tiny: calibrate on text other than the
# evaluation text, quantize with every allocation, and score each file on the first 20,000
# tokens of wikitext2-valid (PPL, KL to F16, top-1 agreement, size, true bits per weight).
#   bash bench/quality.sh [OUT_DIR]              (default /tmp/mcmoe-quality)
# llama.cpp rows: set LLAMA_DIR to a directory holding mixtral-tiny-{Q2_K,Q3_K_S,Q4_K_M}.gguf
# and mixtral-tiny-{...}-imatrix.gguf made by llama.cpp's own llama-quantize (see
# bench/RESULTS.md for the exact commands).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-quality}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
model=../shared/models/mixtral-tiny
# Calibration text (never the evaluated tokens): by default wikitext2-valid from byte 150,000
# on; the first 20,000 evaluation tokens end near byte 48,000 with this tokenizer. CALIB=mix
# uses ~120 KB from each other corpus instead (fairy tales, Shakespeare, children's stories,
# Russian prose), cut at line ends. CALIB_TEXT=FILE overrides both.
if [ -z "${CALIB_TEXT:-}" ]; then
  if [ "${CALIB:-wikitail}" = mix ]; then
    calib=$out/calib-mix.txt
    source bench/calib_mix.sh
    make_calib_mix "$calib"
  else
    calib=$out/calib-wikitail.txt
    [ -f "$calib" ] || tail -c +150001 ../shared/corpus/wikitext2-valid.txt > "$calib"
  fi
else
  calib=$CALIB_TEXT
fi
evaltext=../shared/corpus/wikitext2-valid.txt
stats="$out/stats.json"
[ -f "$stats" ] || $mc calibrate -m "$model" -f "$calib" --samples 64 --seq 512 -o "$stats" | tee "$out/calibrate.log"

q() {  # name, quantize flags...
  local name=$1; shift
  [ -f "$out/$name.gguf" ] || $mc quantize -m "$model" --stats "$stats" "$@" -o "$out/$name.gguf" > "$out/$name.quantize.log"
}
q gptq-u2 --alloc uniform --bits 2
q gptq-u3 --alloc uniform --bits 3
q gptq-u4 --alloc uniform --bits 4
q pmq-1.5 --bits 1.5
q pmq-2.0 --bits 2.0
q pmq-2.5 --bits 2.5
q pmq-3.0 --bits 3.0 --candidates 2,3,4
q hessian-2.0 --alloc hessian --bits 2.0
q hessian-2.5 --alloc hessian --bits 2.5
q frequency-2.0 --alloc frequency --bits 2.0
q frequency-2.5 --alloc frequency --bits 2.5
q random-2.5 --alloc random --bits 2.5
q rtn-pmq-2.5 --bits 2.5 --rtn
q pmq-2.5-q8embd --bits 2.5 --embd-type q8_0
q pmq23-2.5 --bits 2.5 --candidates 2,3
q pmq23-2.5-q8embd --bits 2.5 --candidates 2,3 --embd-type q8_0
q gptq-u2-q8embd --alloc uniform --bits 2 --embd-type q8_0
q gptq-u3-q8embd --alloc uniform --bits 3 --embd-type q8_0
q gptq-u2-nosearch --alloc uniform --bits 2 --no-search

row() {  # label, file, extra ppl flags...
  local label=$1 file=$2; shift 2
  local j bits size
  j=$($mc ppl -m "$file" -f "$evaltext" --max-tokens 20000 --json --kl-base "$model" "$@" 2>"$out/ppl.err")
  bits=$($mc inspect "$file" | sed -n 's/^true bits per weight.*experts \([0-9.]*\), decoder linears \([0-9.]*\)$/\1 | \2/p')
  size=$(stat -L -c %s "$file")
  python3 - "$label" "$size" "$bits" "$j" <<'PY'
import json, sys
label, size, bits, j = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
odp = f" | {100*j['odp_pruned_fraction']:.1f}%" if 'odp_pruned_fraction' in j else " | –"
print(f"| {label} | {j['ppl']:.4f} | {j['kl_mean']:.5f} | {j['top1_agree']:.4f} | {size/2**20:.2f} | {bits}{odp} |")
PY
}
{
  echo "| model | PPL | KL to F16 | top-1 | MiB | bits/weight experts | bits/weight linears | ODP pruned |"
  echo "|---|---|---|---|---|---|---|---|"
  [ -f "$out/f16.gguf" ] || $mc convert "$model" --type f16 -o "$out/f16.gguf" >/dev/null
  row "F16" "$out/f16.gguf"
  for n in gptq-u4 gptq-u3 gptq-u3-q8embd gptq-u2 gptq-u2-q8embd gptq-u2-nosearch pmq-3.0 pmq-2.5 pmq-2.5-q8embd \
           pmq23-2.5 pmq23-2.5-q8embd pmq-2.0 pmq-1.5 hessian-2.5 hessian-2.0 frequency-2.5 frequency-2.0 random-2.5 \
           rtn-pmq-2.5; do
    row "$n" "$out/$n.gguf"
  done
  row "pmq-2.5 + ODP" "$out/pmq-2.5.gguf" --odp
  row "pmq-2.0 + ODP" "$out/pmq-2.0.gguf" --odp
  row "pmq-2.5 + ODP (no protection)" "$out/pmq-2.5.gguf" --odp --odp-protect 0
  row "pmq23-2.5 + ODP" "$out/pmq23-2.5.gguf" --odp
  if [ -n "${LLAMA_DIR:-}" ]; then
    for t in Q2_K Q3_K_S Q4_K_M; do
      for v in "" "-imatrix"; do
        f="$LLAMA_DIR/mixtral-tiny-$t$v.gguf"
        [ -f "$f" ] || f="$LLAMA_DIR/mixtral-tiny-$t${v%rix}.gguf"  # -imat spelling
        [ -f "$f" ] && row "llama.cpp $t$v" "$f"
      done
    done
  fi
} | tee "$out/table.md"
