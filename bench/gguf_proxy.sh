#!/usr/bin/env bash
# Does `quantize --format gguf`'s error proxy track KL? One tensor at a time is quantized to
# TYPE (GPTQ on ggml's grid, `--types f16 --tensor-type NAME=TYPE`, everything else F16), and
# the KL of that file to the F16 model is measured (mcmoe ppl --kl-base, first 20,000 tokens of
# wikitext2-valid). The proxy is the output error the allocation used for that (tensor, type),
# read from a full run's candidate table (LOG, made by bench/gguf_export.sh with the same
# calibration). Prints one row per tensor and the Pearson correlation of log(proxy) with
# log(KL), and Spearman's rank correlation.
#   bash bench/gguf_proxy.sh LOG [TYPE] [OUT_DIR]     (TYPE default q2_k; model mixtral-tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
log=$1
type=${2:-q2_k}
out=${3:-/tmp/mcmoe-gguf-proxy}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
model=${MODEL:-../shared/models/mixtral-tiny}
source bench/calib_mix.sh
calib=$out/calib-mix.txt
make_calib_mix "$calib"
tensors=${TENSORS:-$(awk '$1 ~ /^(blk\.(0|2|5)\.|token_embd|output)/ {print $1}' "$log")}
for t in $tensors; do
  f=$out/$t-$type.gguf
  re="^${t//./\\.}\$"
  [ -f "$f" ] || $mc quantize --format gguf -m "$model" -f "$calib" --samples 100 --seq 512 --types f16 \
    --tensor-type "$re=$type" -o "$f" >/dev/null 2>&1
  kl=$($mc ppl -m "$f" -f ../shared/corpus/wikitext2-valid.txt --max-tokens 20000 --json --kl-base "$model" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["kl_mean"])')
  proxy=$(awk -v t="$t" -v ty="$type" '$1 == t { for (i = 1; i <= NF; ++i) if ($i == ty ":") { v = $(i + 2); sub(/,$/, "", v); print v } }' "$log")
  echo "$t $proxy $kl"
done | tee "$out/proxy-$type.txt"
python3 - "$out/proxy-$type.txt" <<'PY'
import math, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
p = [math.log(float(r[1])) for r in rows]
k = [math.log(max(float(r[2]), 1e-9)) for r in rows]
def pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
def ranks(a):
    order = sorted(range(len(a)), key=lambda i: a[i])
    r = [0] * len(a)
    for pos, i in enumerate(order): r[i] = pos
    return r
print(f"tensors {len(rows)}: Pearson(log proxy, log KL) {pearson(p, k):.3f}, Spearman {pearson(ranks(p), ranks(k)):.3f}")
PY
