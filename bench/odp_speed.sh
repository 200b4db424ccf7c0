#!/usr/bin/env bash
# Issue 16, item 5: the decode speed ODP buys, beside bench/odp_curve.sh's KL. A 1.9 GB
# synthetic Mixtral (16 layers, d 2048, 8 x 4096 experts top-2, Q4_0) that routes like
# mixtral-tiny (synth --routing-from, as bench/offload.sh), all resident, decoding WikiText-2
# one token at a time; ODP off and at fixed thresholds mu, alternating ROUNDS times (default 2).
# The synthetic router is flatter than mixtral-tiny's, so the same mu prunes less here: read
# the speed against the pruned share, then the share against KL in odp_curve.sh's table.
#   bash bench/odp_speed.sh [OUT_DIR]     (default /tmp/mcmoe-odp-speed; ~2 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-odp-speed}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
q4=models/mixtral-tiny-q4_0.gguf
wiki=../shared/corpus/wikitext2-valid.txt
[ -f "$out/tiny-q4.trace" ] || $mc trace -m "$q4" -f "$wiki" --max-tokens 4000 -o "$out/tiny-q4.trace" >/dev/null 2>&1
syn=$out/syn.gguf
[ -f "$syn" ] || $mc synth --layers 16 --dim 2048 --ff 4096 --experts 8 --top-k 2 --type q4_0 --tokenizer-from "$q4" \
  --routing-from "$out/tiny-q4.trace" -o "$syn" >/dev/null 2>&1
head -c 260000 "$wiki" | tail -c 60000 > "$out/decode.txt"
printf 'round\tmu\ttok_s\tmb_per_token\tpruned\n'
for r in $(seq 1 "${ROUNDS:-2}"); do
  for mu in ${MUS:-off 0.5 0.7 0.85 1.0}; do
    flags=()
    [ "$mu" = off ] || flags=(--odp --odp-mu "$mu")
    o=$($mc bench -m "$syn" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens 128 --reps 2 "${flags[@]}" 2>&1)
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$mu" \
      "$(sed -n 's/^decode .*: \([0-9.]*\) tok\/s.*/\1/p' <<<"$o")" \
      "$(sed -n 's/^decode .* tok\/s, \([0-9.]*\) MB read\/token.*/\1/p' <<<"$o")" \
      "$(sed -n 's/^odp: \([0-9.]*\)% .*/\1/p' <<<"$o")"
  done
done
