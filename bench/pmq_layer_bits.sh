#!/usr/bin/env bash
# Issue 16: the layer ablation's lead (bench/pmq_layer_ablation.sh) tried as an allocation:
# `quantize --layer-bits` gives the listed MoE layers a wider average and the other layers
# the rest of the same 2.5-bit budget (GPTQ damp 0.1, the default). Reuses OUT_DIR's
# calibration statistics and evaluation text from bench/pmq_robustness.sh.
#   bash bench/pmq_layer_bits.sh [OUT_DIR]     (default /tmp/mcmoe-pmq-robust)
# Environment: MCMOE (default ./build/mcmoe). Output: OUT_DIR/layerbits.tsv
# (model, calibration, --layer-bits, evaluation, KL, top-1 agreement, bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-pmq-robust}
mc=${MCMOE:-./build/mcmoe}
declare -A model_dir=([mixtral]=../shared/models/mixtral-tiny [qwen2moe]=models/qwen2moe-tiny)
declare -A specs=([mixtral]="0=3,5=3 0=3" [qwen2moe]="0=3,3=3 0=2.75,3=2.75")
declare -A eval_text=([wiki]=../shared/corpus/wikitext2-valid.txt [wp]=$out/eval-war-and-peace-tail.txt)
for m in mixtral qwen2moe; do
  for c in wiki other; do
    for spec in ${specs[$m]}; do
      f=$out/lb-$m-$c-${spec//[=,]/_}.gguf
      [ -f "$f" ] || $mc quantize -m "${model_dir[$m]}" --stats "$out/$m-$c.stats.json" --bits 2.5 \
        --layer-bits "$spec" --threads 1 -o "$f" > "$f.log" 2>&1
      for e in wiki wp; do
        kl=$($mc ppl -m "$f" -f "${eval_text[$e]}" --max-tokens 20000 --json --kl-base "${model_dir[$m]}" \
          --threads 1 2>/dev/null | python3 -c "import json,sys; j=json.load(sys.stdin); print(f\"{j['kl_mean']:.5f}\t{j['top1_agree']:.4f}\")")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$c" "$spec" "$e" "$kl" "$(stat -c %s "$f")" | tee -a "$out/layerbits.tsv"
      done
    done
  done
done
