#!/usr/bin/env bash
# Issue 16, item 1: the KL of a quantized model split by layer, by ablating one layer's
# quantization at a time. For each (model, calibration) the method's file is made once as
# is, and once per decoder layer L with `quantize --q8-layers L` (every matrix of layer L at
# 8 bits, experts included); layer L's share of the KL is KL(full) − KL(L at 8 bits).
#   bash bench/pmq_layer_ablation.sh [OUT_DIR]     (default /tmp/mcmoe-pmq-robust)
# It reuses OUT_DIR's calibration statistics and texts from bench/pmq_robustness.sh (run
# that first, or at least its calibrations). Environment: MCMOE (default ./build/mcmoe);
# MODELS (default "mixtral qwen2moe"); CALIBS (default "wiki other"); FLAGS (quantize flags,
# default "--bits 2.5 --damp 0.01", as the recorded table was made); EVALS (default "wiki wp").
# Output: OUT_DIR/ablation.tsv, one row per (model, calibration, ablated layer, evaluation);
# layer "none" is the full file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-pmq-robust}
mc=${MCMOE:-./build/mcmoe}
flags=${FLAGS:-"--bits 2.5 --damp 0.01"}
declare -A model_dir=([mixtral]=../shared/models/mixtral-tiny [qwen2moe]=models/qwen2moe-tiny)
declare -A eval_text=([wiki]=../shared/corpus/wikitext2-valid.txt [wp]=$out/eval-war-and-peace-tail.txt)
for e in ${EVALS:-wiki wp}; do
  [ -f "${eval_text[$e]}" ] || { echo "missing ${eval_text[$e]}: run bench/pmq_robustness.sh first" >&2; exit 1; }
done

tsv=$out/ablation.tsv
[ -f "$tsv" ] || printf 'model\tcalib\tflags\tq8_layer\teval\tkl\ttop1\tmib\n' > "$tsv"

for m in ${MODELS:-mixtral qwen2moe}; do
  n_layer=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['num_hidden_layers'])" \
    "${model_dir[$m]}/config.json")
  for c in ${CALIBS:-wiki other}; do
    stats=$out/$m-$c.stats.json
    [ -f "$stats" ] || { echo "missing $stats: run bench/pmq_robustness.sh first" >&2; exit 1; }
    for layer in none $(seq 0 $((n_layer - 1))); do
      tag=${flags// /}
      f=$out/abl-$m-$c-$tag-$layer.gguf
      extra=()
      [ "$layer" = none ] || extra=(--q8-layers "$layer")
      # shellcheck disable=SC2086  # the flags are words
      [ -f "$f" ] || $mc quantize -m "${model_dir[$m]}" --stats "$stats" $flags "${extra[@]}" -o "$f" > "$f.log" 2>&1
      for e in ${EVALS:-wiki wp}; do
        grep -q "^$m	$c	$flags	$layer	$e	" "$tsv" && continue
        j=$($mc ppl -m "$f" -f "${eval_text[$e]}" --max-tokens 20000 --json --kl-base "${model_dir[$m]}" 2>/dev/null)
        python3 - "$m" "$c" "$flags" "$layer" "$e" "$(stat -L -c %s "$f")" "$j" >> "$tsv" <<'PY'
import json, sys
m, c, flags, layer, e, size, j = sys.argv[1:6] + [int(sys.argv[6]), json.loads(sys.argv[7])]
print(f"{m}\t{c}\t{flags}\t{layer}\t{e}\t{j['kl_mean']:.5f}\t{j['top1_agree']:.4f}\t{size / 2**20:.3f}")
PY
        tail -1 "$tsv"
      done
    done
  done
done
