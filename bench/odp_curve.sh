#!/usr/bin/env bash
# Issue 16, item 5: ODP as a dial. One quantized file is scored with ODP off, with the file's
# own per-layer thresholds (the calibration's median ratio, the paper's rule), and with a
# fixed threshold mu swept from 0.05 to 0.6 (the second expert is dropped when its routing
# weight is below mu times the first's): share of expert activations pruned against KL to
# the unquantized model, on the first 20,000 tokens of wikitext2-valid.
#   bash bench/odp_curve.sh QUANTIZED.gguf BASE_MODEL [OUT.tsv]
# Environment: MCMOE (binary, default ./build/mcmoe); MUS (the thresholds swept).
set -euo pipefail
cd "$(dirname "$0")/.."
file=$1
base=$2
tsv=${3:-/tmp/mcmoe-odp-curve.tsv}
mc=${MCMOE:-./build/mcmoe}
text=../shared/corpus/wikitext2-valid.txt
printf 'odp\tpruned\tppl\tkl\ttop1\troute_agree\n' > "$tsv"
row() {  # label, ppl flags...
  local label=$1 j
  shift
  j=$($mc ppl -m "$file" -f "$text" --max-tokens 20000 --json --kl-base "$base" "$@" 2>/dev/null)
  python3 - "$label" "$j" >> "$tsv" <<'PY'
import json, sys
label, j = sys.argv[1], json.loads(sys.argv[2])
ra = j.get("routing_agree", [])
agree = sum(x["agree"] for x in ra) / len(ra) if ra else float("nan")
print(f"{label}\t{j.get('odp_pruned_fraction', 0.0):.4f}\t{j['ppl']:.4f}\t{j['kl_mean']:.5f}\t{j['top1_agree']:.4f}\t{agree:.4f}")
PY
  tail -1 "$tsv"
}
row off
row median --odp
for mu in ${MUS:-0.05 0.1 0.15 0.2 0.3 0.4 0.5 0.6}; do
  row "mu=$mu" --odp --odp-mu "$mu"
done
