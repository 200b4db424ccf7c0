#!/usr/bin/env bash
# Offloaded inference (issue 4): cache policies on a real trace, and decode speed with the
# experts on disk under a memory limit, against llama.cpp (mmap) under the same limit.
#   bash bench/offload.sh [OUT_DIR]            (default /tmp/mcmoe-offload; ~2 GB of disk)
#   LLAMA_DIR=/path/to/llama.cpp/build/bin    adds the llama.cpp rows (llama-perplexity)
#   ROUNDS=N (with LLAMA_DIR)                 only the headline: N alternating rounds of mcmoe
#                                             (LRU and LFU, + prefetch) and llama.cpp
#   MARGINS="0 0.1 0.3" [MARGIN_ROUNDS=2]     only cache-aware routing's speed at each MARGIN
# Needs root for dropping the page cache and for the cgroup-v1 memory limit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-offload}
mkdir -p "$out"
mcmoe=${MCMOE:-./build/mcmoe}
tiny=../shared/models/mixtral-tiny
wiki=../shared/corpus/wikitext2-valid.txt

# 1. Policies on mixtral-tiny's routing over the first 20,000 tokens of WikiText-2.
[ -f "$out/tiny.trace" ] || $mcmoe trace -m "$tiny" -f "$wiki" --max-tokens 20000 --depth 2 --top-m 4 -o "$out/tiny.trace"
for b in 25% 50% 75%; do
  echo "== cachesim budget $b"
  $mcmoe cachesim "$out/tiny.trace" --budget "$b" --prefetch-depth 1
  $mcmoe cachesim "$out/tiny.trace" --budget "$b" --per-layer | grep -E "^(lfu|belady)"
done
$mcmoe cachesim "$out/tiny.trace" --budget 50% --prefetch-depth 2 --prefetch-m 3 | grep prediction

# 2. A 1.9 GB synthetic Mixtral (16 layers, d 2048, 8 x 4096 experts, Q4_0) that routes like
#    mixtral-tiny (synth --routing-from), decoding real text one token at a time.
q4=models/mixtral-tiny-q4_0.gguf
[ -f "$out/tiny-q4.trace" ] || $mcmoe trace -m "$q4" -f "$wiki" --max-tokens 20000 -o "$out/tiny-q4.trace"
big="$out/syn-offload.gguf"
[ -f "$big" ] || $mcmoe synth --layers 16 --dim 2048 --ff 4096 --experts 8 --top-k 2 --type q4_0 \
  --tokenizer-from "$q4" --routing-from "$out/tiny-q4.trace" -o "$big"
head -c 260000 "$wiki" | tail -c 60000 > "$out/decode.txt"
limit=${LIMIT:-1100M}   # cache budget 864 MiB (50% of the experts) + resident weights + overhead
cg=/sys/fs/cgroup/memory/mcmoe-offload
mkdir -p "$cg"
limited() { sync; echo 3 > /proc/sys/vm/drop_caches; bash -c 'echo $$ > '"$cg"'/cgroup.procs; exec "$@"' _ "$@"; }
run() {
  echo "== $1 (memory limit $(cat $cg/memory.limit_in_bytes) bytes, page cache dropped)"
  shift
  limited $mcmoe bench -m "$big" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens 128 --reps 1 --no-bandwidth --stats "$@" 2>&1 |
    grep -E "^decode|hit rate|stall|prediction|prefetch reads|fallback:|peak"
}
echo "$limit" > "$cg/memory.limit_in_bytes"
if [ -n "${MARGINS:-}" ]; then
  # MARGINS="0 0.1 ...": cache-aware routing's speed (issue 15), --cache-aware-routing M for
  # each M, demand-only and with prefetch, MARGIN_ROUNDS rounds (default 2) with the margins
  # alternating, each run from a dropped page cache under the limit. One line per run in
  # OUT/margin_speed.tsv: tok/s, hit rate, MiB read and stall per token, share of uncached
  # picks moved to a cached expert.
  speed="$out/margin_speed.tsv"
  printf 'round\tprefetch\tmargin\ttok_s\thit_rate\tmib_per_token\tstall_ms_per_token\tmoved_share\n' > "$speed"
  for r in $(seq 1 "${MARGIN_ROUNDS:-2}"); do
    for p in 0 1; do
      for m in $MARGINS; do
        log="$out/margin-r$r-p$p-m$m.log"
        limited $mcmoe bench -m "$big" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens 128 --reps 1 \
          --no-bandwidth --expert-cache 50% --prefetch $p --cache-policy lfu --cache-aware-routing "$m" --stats > "$log" 2>&1
        python3 - "$log" "$r" "$p" "$m" <<'PY' | tee -a "$speed"
import re, sys
t = open(sys.argv[1]).read()
tok = re.search(r"^decode .*: ([0-9.]+) tok/s", t, re.M).group(1)
hit = re.search(r"hit rate ([0-9.]+)", t).group(1)
mib = re.search(r"reads \d+, ([0-9.]+) MiB per token", t).group(1)
stall = re.search(r"stall ([0-9.]+) ms per token", t).group(1)
m = re.search(r"(\d+) of \d+ picks uncached, (\d+) of them", t)
moved = f"{int(m.group(2)) / max(1, int(m.group(1))):.3f}" if m else "0"
print("\t".join(sys.argv[2:5] + [tok, hit, mib, stall, moved]))
PY
      done
    done
  done
  exit 0
fi
if [ -n "${ROUNDS:-}" ]; then
  # ROUNDS=N: only the headline comparison, repeated N times with the engines alternating
  # (mcmoe LRU + prefetch, mcmoe LFU + prefetch, llama.cpp), each run from a dropped page
  # cache under the same limit; one line per run, then the spread of the ratios.
  [ -n "${LLAMA_DIR:-}" ] || { echo "ROUNDS needs LLAMA_DIR" >&2; exit 1; }
  rounds="$out/rounds.tsv"
  printf 'round\tengine\ttok_s\n' > "$rounds"
  for r in $(seq 1 "$ROUNDS"); do
    for p in lru lfu; do
      t=$(limited $mcmoe bench -m "$big" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens 128 --reps 1 \
            --no-bandwidth --expert-cache 50% --prefetch 1 --cache-policy $p 2>/dev/null |
          sed -n 's/^decode .*: \([0-9.]*\) tok\/s.*/\1/p')
      printf '%s\tmcmoe-%s\t%s\n' "$r" "$p" "$t" | tee -a "$rounds"
    done
    t=$(limited "$LLAMA_DIR/llama-perplexity" -m "$big" -f "$out/decode.txt" -c 64 -b 1 -ub 1 --chunks 1 -t 2 2>&1 |
        sed -n 's/.*  eval time = .* runs *(.* ms per token, *\([0-9.]*\) tokens per second).*/\1/p')
    printf '%s\tllama.cpp\t%s\n' "$r" "$t" | tee -a "$rounds"
  done
  python3 - "$rounds" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["engine"]] = float(r["tok_s"])
for eng in ("mcmoe-lru", "mcmoe-lfu"):
    ratios = sorted(v[eng] / v["llama.cpp"] for v in by.values())
    print(f"{eng} / llama.cpp per round: " + " ".join(f"{x:.1f}" for x in ratios) +
          f"  (min {ratios[0]:.1f}, median {ratios[len(ratios) // 2]:.1f}, max {ratios[-1]:.1f})")
PY
  exit 0
fi
run "(a) every expert read on demand" --expert-cache 28MiB --prefetch 0 --cache-policy lru
run "(b) LRU, 50% cache" --expert-cache 50% --prefetch 0 --cache-policy lru
run "(c) LRU + prefetch" --expert-cache 50% --prefetch 1 --cache-policy lru
run "(b') LFU, 50% cache" --expert-cache 50% --prefetch 0 --cache-policy lfu
run "(c') LFU + prefetch (the default policy)" --expert-cache 50% --prefetch 1 --cache-policy lfu
# (d) HOBBIT: a resident 1-bit copy of every expert (480 MiB); a miss whose routing weight is
# below 0.42 (the synthetic router is flatter than the real one: 0.42 is its 25th percentile
# of second-pick weights, as 0.28 is mixtral-tiny's) computes with it instead of reading.
fb="$out/syn-offload-fallback.gguf"
if [ ! -f "$fb" ]; then
  $mcmoe calibrate -m "$big" -f "$out/decode.txt" --samples 2 --seq 64 --candidates 1 -o "$out/syn.stats.json"
  $mcmoe quantize -m "$big" --stats "$out/syn.stats.json" --alloc uniform --bits 1 --candidates 1 --rtn --embd-type q8_0 -o "$fb"
fi
run "(d) LRU + prefetch + 1-bit fallback, same memory limit (cache 40%)" --expert-cache 40% --prefetch 1 --cache-policy lru \
  --fallback "$fb" --fallback-threshold 0.42
echo 1700M > "$cg/memory.limit_in_bytes"
for p in lru lfu; do
  run "(d') $p + prefetch + 1-bit fallback, cache 50% (limit raised by the copy)" --expert-cache 50% --prefetch 1 --cache-policy $p \
    --fallback "$fb" --fallback-threshold 0.42
done
echo "$limit" > "$cg/memory.limit_in_bytes"
if [ -n "${LLAMA_DIR:-}" ]; then
  # llama.cpp's runtime Q4_0 repacking (GGML_CPU_AARCH64) copies every weight into anonymous
  # memory, which cannot fit the limit: use a build with -DGGML_CPU_AARCH64=OFF, so it runs
  # from its mmap as designed. -b 1: one token per step over the same text.
  echo "== llama.cpp llama-perplexity -c 64 -b 1 (mmap; memory limit $limit, page cache dropped)"
  limited "$LLAMA_DIR/llama-perplexity" -m "$big" -f "$out/decode.txt" -c 64 -b 1 -ub 1 --chunks 1 -t 2 2>&1 |
    grep -E "prompt eval time|  eval time|total time" || true
  echo "== llama.cpp, no memory limit (warm page cache), for reference"
  "$LLAMA_DIR/llama-perplexity" -m "$big" -f "$out/decode.txt" -c 64 -b 1 -ub 1 --chunks 1 -t 2 >/dev/null 2>&1
  "$LLAMA_DIR/llama-perplexity" -m "$big" -f "$out/decode.txt" -c 64 -b 1 -ub 1 --chunks 1 -t 2 2>&1 | grep -E "prompt eval time|  eval time" || true
  echo "== mcmoe, no memory limit, all experts resident, for reference"
  $mcmoe bench -m "$big" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens 128 --reps 1 --no-bandwidth | grep -E "^decode"
fi
