#!/usr/bin/env bash
# Cache-aware routing (issue 15): KL to the unmodified model, perplexity, hit rate and MiB
# read per token against --cache-aware-routing MARGIN, on mixtral-tiny (Q4_0) with half of
# its experts cached, decoding WikiText-2 one token at a time (--batch-size 1: prefill
# batches touch nearly every expert and would measure something else).
#   bash bench/cache_aware_routing.sh [OUT_DIR]    (default /tmp/mcmoe-car; ~10 minutes; POLICIES="lfu cycle:200" for more)
# Writes OUT_DIR/cache_aware_routing.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-car}
mkdir -p "$out"
mcmoe=${MCMOE:-./build/mcmoe}
model=models/mixtral-tiny-q4_0.gguf
tokens=${TOKENS:-2048}
printf "prefetch\tpolicy\tmargin\tppl\tkl\ttop1\thit_rate\tmib_per_token\tmoved_share\n" > "$out/cache_aware_routing.tsv"
for prefetch in 0 1; do
  for policy in ${POLICIES:-lfu}; do
    for margin in 0 0.1 0.2 0.3 0.5 1; do
      log="$out/p$prefetch-$policy-m$margin.log"
      $mcmoe ppl -m "$model" -f ../shared/corpus/wikitext2-valid.txt --max-tokens "$tokens" --batch-size 1 \
        --expert-cache 50% --cache-policy "$policy" --prefetch "$prefetch" --cache-aware-routing "$margin" \
        --kl-base "$model" --stats > "$log" 2>&1
      python3 - "$log" "$prefetch" "$policy" "$margin" >> "$out/cache_aware_routing.tsv" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
ppl = re.search(r"^ppl ([0-9.]+) over", t, re.M).group(1)
kl = re.search(r"KL\(base\|\|model\) mean ([0-9.e-]+)", t).group(1)
top1 = re.search(r"top-1 agreement ([0-9.]+)", t).group(1)
hit = re.search(r"hit rate ([0-9.]+)", t).group(1)
mib = re.search(r"reads \d+, ([0-9.]+) MiB per token", t).group(1)
m = re.search(r"(\d+) of \d+ picks uncached, (\d+) of them", t)
moved = f"{int(m.group(2)) / max(1, int(m.group(1))):.3f}" if m else "0"
print("\t".join([sys.argv[2], sys.argv[3], sys.argv[4], ppl, kl, top1, hit, mib, moved]))
PY
    done
  done
done
column -t "$out/cache_aware_routing.tsv"
