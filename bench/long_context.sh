#!/usr/bin/env bash
# Long-context speed (bench/RESULTS.md §8), 2 threads, on the 2.25 B synthetic models of
# bench/speed.sh in Q4_0 and Q8_0, mcmoe beside llama.cpp on the same files in one run:
#   - prefill at 512, 2k, 4k, 8k and 16k tokens from an empty cache (llama-bench -p);
#   - decode of 128 tokens at depths 0, 4k and 16k. mcmoe: bench --depth (decode right after
#     the timed prefill of that many tokens). llama.cpp c392e50's llama-bench has no depth
#     option (and deriving decode from -pg N,128 minus -p N drowns 3 s of decode in the
#     noise of two 5-minute prefills), so its decode at depth is llama-batched-bench's S_TG
#     after -npp N (-npl 1), and at depth 0 llama-bench's tg128;
#   - peak RSS at 16k context for each KV cache type, beside the cache size mcmoe prints.
# Writes OUT_DIR/long_context.tsv (engine, type, test, tokens, tok/s) and draws
# OUT_DIR/long_context.svg with bench/plot_context.py. llama.cpp rows when LLAMA_BIN points at
# a directory with llama-bench and llama-batched-bench (built from llama.cpp's public source
# outside this repository; LLAMA_FA=1 runs them with flash attention, which on this CPU
# build is slower: 70 against 95 tok/s at a 4k prefill).
#   [LLAMA_BIN=/path/to/llama.cpp/build/bin] bash bench/long_context.sh [OUT_DIR]
# Needs ~4 GB of disk in OUT_DIR (default /tmp/mcmoe-bench, shared with speed.sh) and takes
# about an hour on a quiet 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-bench}
mkdir -p "$out"
mcmoe=./build/mcmoe
tsv="$out/long_context.tsv"
shape=(--arch mixtral --layers 10 --dim 2048 --ff 4096 --experts 8 --top-k 2 --vocab 32000 --heads 16 --kv-heads 4)
lengths=(512 2048 4096 8192 16384)
printf 'engine\ttype\ttest\ttokens\ttok_s\n' >"$tsv"

field() {  # field REGEX FILE: the first capture of REGEX in FILE
  sed -nE "s#$1#\1#p" "$2" | head -1
}

for type in q4_0 q8_0; do
  f="$out/synth-$type.gguf"
  [ -f "$f" ] || "$mcmoe" synth "${shape[@]}" --type "$type" -o "$f"
  for n in "${lengths[@]}"; do
    # Decode after the prompt where the prompt is a depth of the table; a short decode
    # otherwise (its figure is not used).
    case $n in
      512) depth=0 gen=128 ;;
      4096 | 16384) depth=$n gen=128 ;;
      *) depth=0 gen=8 ;;
    esac
    log="$out/mcmoe-$type-$n.log"
    echo "== mcmoe bench $f: prefill $n, decode $gen at depth $depth"
    "$mcmoe" bench -m "$f" --threads 2 --prompt-tokens "$n" --gen-tokens "$gen" --depth "$depth" --reps 1 \
      --no-bandwidth | tee "$log"
    printf 'mcmoe\t%s\tprefill\t%s\t%s\n' "$type" "$n" "$(field '^prefill [0-9]+ tokens: ([0-9.]+) tok/s.*' "$log")" >>"$tsv"
    if [ "$gen" = 128 ]; then
      printf 'mcmoe\t%s\tdecode\t%s\t%s\n' "$type" "$depth" "$(field '^decode [0-9]+ tokens at depth [0-9]+: ([0-9.]+) tok/s.*' "$log")" >>"$tsv"
    fi
  done
  if [ -n "${LLAMA_BIN:-}" ]; then
    fa=()
    [ "${LLAMA_FA:-0}" = 1 ] && fa=(-fa)
    json="$out/llama-$type.json"
    echo "== llama-bench $f"
    "$LLAMA_BIN/llama-bench" -m "$f" -t 2 -r 1 -fa "${LLAMA_FA:-0}" -p "$(IFS=,; echo "${lengths[*]}")" -n 128 \
      -o json >"$json"
    /usr/bin/python3 - "$json" "$type" >>"$tsv" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    test, n = ("decode", 0) if r["n_prompt"] == 0 else ("prefill", r["n_prompt"])
    print(f"llama.cpp\t{sys.argv[2]}\t{test}\t{n}\t{r['avg_ts']:.2f}")
PY
    echo "== llama-batched-bench $f (decode 128 after 4096 and 16384 prompt tokens)"
    log="$out/batched-$type.log"
    "$LLAMA_BIN/llama-batched-bench" -m "$f" -t 2 -c 16640 -b 2048 -ub 512 -npp 4096,16384 -ntg 128 -npl 1 \
      "${fa[@]}" >"$log" 2>&1
    # Table rows: | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
    awk -F'|' -v t="$type" '$2 ~ /^ *[0-9]+ *$/ { gsub(/ /, "", $2); gsub(/ /, "", $9); printf "llama.cpp\t%s\tdecode\t%s\t%s\n", t, $2, $9 }' \
      "$log" >>"$tsv"
  fi
done

# Peak RSS at 16k context per cache type (Q4_0 file): mcmoe prints the cache it allocated.
for cache in f32 f16 q8_0; do
  log="$out/mcmoe-rss-$cache.log"
  echo "== mcmoe bench 16k, cache $cache: peak RSS"
  /usr/bin/time -v "$mcmoe" bench -m "$out/synth-q4_0.gguf" --threads 2 --prompt-tokens 16384 --gen-tokens 4 \
    --depth 16384 --reps 1 --no-bandwidth --cache-type "$cache" >"$log" 2>&1
  grep -E "KV cache|batch scratch|Maximum resident" "$log"
done

/usr/bin/python3 bench/plot_context.py "$tsv" "$out/long_context.svg"
column -t "$tsv"
