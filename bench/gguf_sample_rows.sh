#!/usr/bin/env bash
# `quantize --format gguf --sample-rows F`: candidates measured on a share F of each decoder
# matrix's rows, then one full quantization of the chosen type per tensor, against measuring
# every candidate on every row (F = 1). Same calibration (the other-text mix of
# bench/calib_mix.sh, 100 windows of 512), same size budget, default types and --kl-cost; each
# file scored by mcmoe (`ppl --kl-base`, KL to the F16 model on the first 20,000 tokens of
# wikitext2-valid). Prints one row per F: time (all, first pass, second pass), bytes, KL,
# top-1 agreement, and how many tensors got another type than with F = 1.
#   bash bench/gguf_sample_rows.sh [OUT_DIR]
#   SHARES="1 0.25 0.125" SIZE=10804672 MODEL=../shared/models/mixtral-tiny
#   EXTRA="--kl-cost 0" (more quantize flags; files and logs get TAG=... in their names)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-gguf-sample-rows}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
model=${MODEL:-../shared/models/mixtral-tiny}
size=${SIZE:-10804672}  # §11's mcmoe file at llama-quantize Q3_K_M's size
shares=${SHARES:-1 0.25 0.125}
types=${TYPES:-q2_K,q3_K,q4_K,q5_K,q6_K,q8_0,iq4_xs}
extra=${EXTRA:-}
tag=${TAG:-}
source bench/calib_mix.sh
calib=$out/calib-mix.txt
make_calib_mix "$calib"
evaltext=../shared/corpus/wikitext2-valid.txt

{
printf "share\tseconds\tfirst_pass_s\tsecond_pass_s\tquantize_s\tbytes\tkl\ttop1\tppl\ttypes_changed\n"
for s in $shares; do
  f=$out/rows$tag-$s.gguf
  log=$out/rows$tag-$s.log
  $mc quantize --format gguf -m "$model" -f "$calib" --samples 100 --seq 512 --types "$types" \
    --size "$size" --sample-rows "$s" $extra -o "$f" >"$log" 2>"$log.err"
  j=$($mc ppl -m "$f" -f "$evaltext" --max-tokens 20000 --json --kl-base "$model" 2>/dev/null)
  # "wrote F: N bytes (M MiB) in T s (statistics, candidates and allocation A s[; the chosen
  #  types over every row B s]; quantizing and measuring matrices Q s)"
  times=$(sed -n 's/.* in \([0-9.]*\) s (statistics, candidates and allocation \([0-9.]*\) s\(; the chosen types over every row \([0-9.]*\) s\)\?; quantizing and measuring matrices \([0-9.]*\) s)$/\1 \2 \4 \5/p' "$log")
  changed=$(awk 'FNR == NR { if ($1 ~ /\.weight$/) t[$1] = $3; next }
                 $1 ~ /\.weight$/ && ($1 in t) && t[$1] != $3 { n++ } END { print n + 0 }' \
            "$out/rows$tag-1.log" "$log" 2>/dev/null || echo -)
  read -r total first second quant <<<"$times"
  [ -n "$quant" ] || { quant=$second; second=0; }  # no second pass: three numbers
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$s" "$total" "$first" "$second" "$quant" "$(stat -c %s "$f")" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["kl_mean"])' "$j")" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["top1_agree"])' "$j")" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ppl"])' "$j")" "$changed"
done
} | tee "$out/sample_rows$tag.tsv"
