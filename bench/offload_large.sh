#!/usr/bin/env bash
# Issue 15, item 5: a fine-grained large-model scenario. A Qwen3-30B-A3B-shaped synthetic model
# (48 layers, d 2048, 128 experts top-8, expert width 768, Q4_0: about 17 GB) that routes like
# a trained fine-grained MoE (models/qwen3moe-tiny: 6 layers x 64 experts, top-8), decoded from
# disk under a cgroup-v1 memory limit with the page cache dropped before every run, by mcmoe's
# policies and by llama.cpp (mmap) under the same limit.
#   bash bench/offload_large.sh [OUT_DIR]   (default /tmp/mcmoe-offload-large; ~36 GB of disk)
#   LLAMA_DIR=/path/to/llama.cpp/build/bin adds llama.cpp (built with -DGGML_CPU_AARCH64=OFF,
#   as in bench/offload.sh). LIMIT (default 8G), GEN (decode tokens, default 128), NOISE
#   (synth --routing-noise, default 0.3), STEPS="policies check decode" picks the parts;
#   ROUNDS=N (with LLAMA_DIR): only N alternating rounds of mcmoe's default and llama.cpp;
#   LIMITS="4G 6G 8G 12G" (with LLAMA_DIR): only both engines under each limit (limits.tsv;
#   ENGINES="mcmoe" or "llama.cpp" runs one of them, appending to an existing limits.tsv).
# Needs root for dropping the page cache and for the memory cgroup.
#
# How the synthetic model routes (api/synth_routing.h): every token's embedding carries the
# trained model's mean log routing probabilities for that token id (per traced layer and
# expert); each of the 64 traced experts becomes two synthetic ones (128), a token going to the
# copy a hash of (token id, layer, expert) picks; the 48 layers cycle over the 6 traced ones
# (layer l imitates traced layer l mod 6). llama.cpp (c392e50) has no qwen3moe, so it gets the
# same tensors (same names, same seed, so the same bytes) in a Mixtral-layout file with 128
# experts top-8; that file lacks only Qwen3's q/k norms. mcmoe runs both files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-offload-large}
mkdir -p "$out"
mcmoe=${MCMOE:-./build/mcmoe}
trained=${MODEL:-models/qwen3moe-tiny}
corpus=../shared/corpus
wiki=$corpus/wikitext2-valid.txt
noise=${NOISE:-0.3}
steps=${STEPS:-policies check decode}
[ -f "$out/other.txt" ] || cat "$corpus/tinyshakespeare.txt" "$corpus/grimm-tales.txt" > "$out/other.txt"
small=$out/qwen3moe-tiny.gguf
[ -f "$small" ] || $mcmoe convert "$trained" --type f16 -o "$small" >/dev/null
trace() {  # NAME MODEL TEXT
  [ -f "$out/$1.trace" ] || $mcmoe trace -m "$2" -f "$3" --max-tokens 20000 --depth 2 --top-m 8 -o "$out/$1.trace" >/dev/null
}
policies=lru,lfu,lfu:1800,cycle,cycle:200,lfu+prefetch,cycle:200+prefetch
# Hit rate at 25/50/75% of all experts for every policy, with each one's share of Belady's.
simulate() {  # TRACE...
  for t in "$@"; do
    for b in 25 50 75; do
      $mcmoe cachesim "$out/$t.trace" --budget "$b%" --policy "$policies" |
        awk -v t="$t" -v b="$b" '$2 == "hit-rate" { printf "%s\t%s\t%s\t%s\t%s\n", t, b, $1, $3, $5 }'
    done
    # Next-layer guesses: recall and precision 1 and 2 layers ahead, top-8.
    $mcmoe cachesim "$out/$t.trace" --budget 50% --policy lru --prefetch-depth 2 --prefetch-m 8 |
      awk -v t="$t" '/^# prediction/ { printf "%s\tprediction-%s-ahead\ttop-8\t%s\t%s\n", t, $3, $8, $10 }'
  done
}

# 1. The trained model's own routing (fine-grained: 64 experts, top-8), over WikiText-2 and
#    over other text.
if [[ " $steps " == *" policies "* ]]; then
  trace qwen3-wiki "$small" "$wiki"
  trace qwen3-other "$small" "$out/other.txt"
  printf "trace\tbudget\tpolicy\thit_rate\tmib_per_token\n" > "$out/policies.tsv"
  simulate qwen3-wiki qwen3-other | tee -a "$out/policies.tsv"
fi

# 2. Does the synthetic copy route like the trained model? A thin copy with the big model's
#    routing (48 layers cycling over the 6 traced, 128 experts = 2 copies of 64, top-8, the same
#    noise) but small matrices, traced over the same WikiText-2 tokens: cachesim on it against
#    the trained model's trace.
if [[ " $steps " == *" check "* ]]; then
  trace qwen3-wiki "$small" "$wiki"
  thin=$out/thin-n$noise.gguf
  [ -f "$thin" ] || $mcmoe synth --arch qwen3moe --layers 48 --dim 1280 --ff 32 --experts 128 --top-k 8 --heads 4 \
    --kv-heads 2 --head-dim 64 --type q8_0 --tokenizer-from "$small" --routing-from "$out/qwen3-wiki.trace" \
    --routing-layers cycle --routing-noise "$noise" -o "$thin" >/dev/null
  trace "thin-n$noise-wiki" "$thin" "$wiki"
  # 48 layers x 128 experts make cachesim slow (about 50 s per policy and budget, Belady included,
  # whose victims took 160 s before ea9cf30): 50% only.
  printf "trace\tbudget\tpolicy\thit_rate\tmib_per_token\n" > "$out/check-n$noise.tsv"
  for t in qwen3-wiki "thin-n$noise-wiki"; do
    $mcmoe cachesim "$out/$t.trace" --budget 50% --policy lru,lfu,lfu+prefetch --prefetch-depth 2 --prefetch-m 8 |
      awk -v t="$t" '$2 == "hit-rate" { printf "%s\t50\t%s\t%s\t%s\n", t, $1, $3, $5 }
                     /^# prediction/ { printf "%s\tprediction-%s-ahead\ttop-8\t%s\t%s\n", t, $3, $8, $10 }'
  done | tee -a "$out/check-n$noise.tsv"
fi

# 3. Decode from disk under the memory limit.
if [[ " $steps " == *" decode "* ]]; then
  trace qwen3-wiki "$small" "$wiki"
  big=$out/qwen3-30b-a3b-shape-q4_0.gguf
  mixtral=$out/qwen3-30b-a3b-shape-mixtral-layout-q4_0.gguf
  route=(--tokenizer-from "$small" --routing-from "$out/qwen3-wiki.trace" --routing-layers cycle --routing-noise "$noise")
  [ -f "$big" ] || $mcmoe synth --preset qwen3-30b-a3b --type q4_0 "${route[@]}" -o "$big" >/dev/null
  [ -f "$mixtral" ] || $mcmoe synth --arch mixtral --layers 48 --dim 2048 --ff 768 --experts 128 --top-k 8 --heads 32 \
    --kv-heads 4 --head-dim 128 --rope-theta 1e6 --type q4_0 "${route[@]}" -o "$mixtral" >/dev/null
  head -c 260000 "$wiki" | tail -c 60000 > "$out/decode.txt"
  limit=${LIMIT:-8G}
  gen=${GEN:-128}
  cg=/sys/fs/cgroup/memory/mcmoe-offload-large
  mkdir -p "$cg"
  echo "$limit" > "$cg/memory.limit_in_bytes"
  limited() { sync; echo 3 > /proc/sys/vm/drop_caches; bash -c 'echo $$ > '"$cg"'/cgroup.procs; exec "$@"' _ "$@"; }
  echo "== O_DIRECT read bandwidth of the model file (page cache dropped)"
  sync; echo 3 > /proc/sys/vm/drop_caches
  dd if="$big" of=/dev/null bs=16M count=192 iflag=direct 2>&1 | tail -1
  echo "== the same, two streams at once (mcmoe reads with 2 I/O threads)"
  sync; echo 3 > /proc/sys/vm/drop_caches
  start=$(date +%s.%N)
  dd if="$big" of=/dev/null bs=16M count=96 skip=256 iflag=direct 2>/dev/null &
  dd if="$big" of=/dev/null bs=16M count=96 skip=512 iflag=direct 2>/dev/null
  wait
  echo "$start $(date +%s.%N)" | awk '{ printf "3221225472 bytes in %.2f s: %.2f GB/s\n", $2 - $1, 3.221225472 / ($2 - $1) }'
  run() {  # LABEL FILE FLAGS...
    local label=$1 file=$2
    shift 2
    echo "== $label (memory limit $(cat $cg/memory.limit_in_bytes) bytes, page cache dropped)"
    limited $mcmoe bench -m "$file" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens "$gen" --reps 1 \
      --no-bandwidth --stats --expert-cache auto "$@" 2>&1 |
      grep -E "^decode|expert cache auto|hit rate|stall|prediction|prefetch reads|read per token|peak" || true
  }
  # llama.cpp on the Mixtral-layout copy under the limit: one-token steps over the same text.
  llama() { limited "$LLAMA_DIR/llama-perplexity" -m "$mixtral" -f "$out/decode.txt" -c 32 -b 1 -ub 1 --chunks 1 -t 2 2>&1; }
  # Decode tokens/s of one run of each engine under the current limit (the headline modes).
  mcmoe_tok_s() {
    limited $mcmoe bench -m "$big" --text "$out/decode.txt" --prompt-tokens 16 --gen-tokens "$gen" --reps 1 \
      --no-bandwidth --expert-cache auto 2>/dev/null | sed -n 's/^decode .*: \([0-9.]*\) tok\/s.*/\1/p'
  }
  llama_tok_s() { llama | sed -n 's/.*  eval time = .* runs *(.* ms per token, *\([0-9.]*\) tokens per second).*/\1/p'; }
  if [ -n "${LIMITS:-}" ]; then
    # LIMITS="4G 6G ...": mcmoe's default (--expert-cache auto) and llama.cpp under each memory
    # limit; $out/limits.tsv, drawn by bench/plot_limits.py.
    # gen_tokens: mcmoe's decode length (GEN); llama.cpp's steps are llama-perplexity's 32.
    engines=${ENGINES:-mcmoe llama.cpp}
    [[ " $engines " != *" llama.cpp "* ]] || [ -n "${LLAMA_DIR:-}" ] || { echo "LIMITS needs LLAMA_DIR" >&2; exit 1; }
    [ "$engines" != "mcmoe llama.cpp" ] && [ -f "$out/limits.tsv" ] ||
      printf 'limit_gib\tengine\tgen_tokens\ttok_s\n' > "$out/limits.tsv"
    for lim in $LIMITS; do
      echo "$lim" > "$cg/memory.limit_in_bytes"
      gib=$(awk -v b="$(cat $cg/memory.limit_in_bytes)" 'BEGIN { printf "%g", b / 1073741824 }')
      for engine in $engines; do
        case $engine in
          mcmoe) t=$(mcmoe_tok_s) n=$gen ;;
          llama.cpp) t=$(llama_tok_s) n=32 ;;
          *) echo "ENGINES: unknown engine $engine (expected mcmoe or llama.cpp)" >&2; exit 1 ;;
        esac
        printf '%s\t%s\t%s\t%s\n' "$gib" "$engine" "$n" "${t:-0}" | tee -a "$out/limits.tsv"
      done
    done
    exit 0
  fi
  if [ -n "${ROUNDS:-}" ]; then
    # ROUNDS=N: only the headline, N rounds of mcmoe's default and llama.cpp alternating, each
    # from a dropped page cache under the same limit; one line per run, then the ratios.
    [ -n "${LLAMA_DIR:-}" ] || { echo "ROUNDS needs LLAMA_DIR" >&2; exit 1; }
    rounds="$out/rounds.tsv"
    printf 'round\tengine\ttok_s\n' > "$rounds"
    for r in $(seq 1 "$ROUNDS"); do
      t=$(mcmoe_tok_s)
      printf '%s\tmcmoe\t%s\n' "$r" "$t" | tee -a "$rounds"
      t=$(llama_tok_s)
      printf '%s\tllama.cpp\t%s\n' "$r" "$t" | tee -a "$rounds"
    done
    awk -F'\t' 'NR > 1 { v[$1, $2] = $3; n = $1 } END {
      for (r = 1; r <= n; ++r) printf "round %d: mcmoe / llama.cpp = %.1f\n", r, v[r, "mcmoe"] / v[r, "llama.cpp"] }' "$rounds"
    exit 0
  fi
  run "mcmoe default (lfu + prefetch 1, guesses refitted from the logits every 250 tokens)" "$big"
  run "mcmoe lfu + prefetch 1, the routers' own guesses" "$big" --prefetch-fit 0
  run "mcmoe cycle:200 + prefetch 1" "$big" --cache-policy cycle:200
  run "mcmoe lru + prefetch 1" "$big" --cache-policy lru
  run "mcmoe lfu, demand only" "$big" --prefetch 0
  run "mcmoe default on the Mixtral-layout copy" "$mixtral"
  if [ -n "${LLAMA_DIR:-}" ]; then
    echo "== llama.cpp llama-perplexity -c 32 -b 1 on the Mixtral-layout copy (mmap; memory limit $limit, page cache dropped)"
    llama | grep -E "prompt eval time|  eval time|total time" || true
  fi
fi
