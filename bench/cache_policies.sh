#!/usr/bin/env bash
# Expert-cache policies against Belady on recorded routing traces (issue 15): hit rate at
# budgets from 10% to 90% of all experts, demand-only and with next-layer prefetch, for
# LRU, LFU, seeded LFU, the layer-aware cycle policy (with its ablations) and Belady.
#   bash bench/cache_policies.sh [OUT_DIR]      (default /tmp/mcmoe-policies; a few minutes)
# Writes OUT_DIR/policies.tsv (trace, budget, policy, hit rate, MiB read per token) and
# OUT_DIR/prediction.tsv, and prints the 25/50/75% tables; bench/plot_policies.py draws
# bench/cache_policies.svg from the TSV.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-policies}
mkdir -p "$out"
mcmoe=${MCMOE:-./build/mcmoe}
corpus=../shared/corpus
wiki=$corpus/wikitext2-valid.txt

# Traces: mixtral-tiny over WikiText-2 (the issue-4 trace), over other text (Shakespeare +
# Grimm), and qwen2moe-tiny (60 experts top-4 + a shared expert) over WikiText-2.
[ -f "$out/other.txt" ] || cat "$corpus/tinyshakespeare.txt" "$corpus/grimm-tales.txt" > "$out/other.txt"
trace() {  # NAME MODEL TEXT
  [ -f "$out/$1.trace" ] || $mcmoe trace -m "$2" -f "$3" --max-tokens 20000 --depth 2 --top-m 4 -o "$out/$1.trace"
}
trace mixtral-wiki ../shared/models/mixtral-tiny "$wiki"
trace mixtral-other ../shared/models/mixtral-tiny "$out/other.txt"
trace qwen2moe-wiki models/qwen2moe-tiny "$wiki"

policies=${POLICIES:-lru,lfu,lfu-seeded,lfu:1800,cycle-rate,cycle-temporal,cycle-nohint,cycle,cycle:200,cycle-seeded}
printf "trace\tbudget\tpolicy\thit_rate\tmib_per_token\n" > "$out/policies.tsv"
printf "trace\tahead\ttop_m\trecall\tprecision\n" > "$out/prediction.tsv"
for t in mixtral-wiki mixtral-other qwen2moe-wiki; do
  for b in 10 20 25 30 40 50 60 70 75 80 90; do
    $mcmoe cachesim "$out/$t.trace" --budget "$b%" --policy "$policies,lfu+prefetch,cycle:200+prefetch" |
      awk -v t="$t" -v b="$b" '$2 == "hit-rate" { printf "%s\t%s\t%s\t%s\t%s\n", t, b, $1, $3, $5 }' >> "$out/policies.tsv"
  done
  for m in 1 2 3 4; do
    $mcmoe cachesim "$out/$t.trace" --budget 50% --policy lru --prefetch-depth 2 --prefetch-m "$m" |
      awk -v t="$t" -v m="$m" '/^# prediction/ { printf "%s\t%s\t%s\t%s\t%s\n", t, $3, m, $8, $10 }' >> "$out/prediction.tsv"
  done
done

# The tables: hit rate at 25/50/75%, and each policy's share of Belady's.
python3 - "$out/policies.tsv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for t in dict.fromkeys(r["trace"] for r in rows):
    print(f"\n## {t}")
    pols = list(dict.fromkeys(r["policy"] for r in rows if r["trace"] == t))
    print("| budget | " + " | ".join(pols) + " |")
    print("|---" * (len(pols) + 1) + "|")
    for b in ("25", "50", "75"):
        hit = {r["policy"]: float(r["hit_rate"]) for r in rows if r["trace"] == t and r["budget"] == b}
        cells = [f"{hit[p]:.3f} ({100 * hit[p] / hit['belady']:.1f}%)" if p != "belady" else f"{hit[p]:.3f}" for p in pols]
        print(f"| {b}% | " + " | ".join(cells) + " |")
EOF
column -t "$out/prediction.tsv"
