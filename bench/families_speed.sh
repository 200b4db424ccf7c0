#!/usr/bin/env bash
# Speed of the new model families (bench/RESULTS.md §6), 2 threads:
#  1. A synthetic DeepSeek-V2-Lite-shaped model (mcmoe synth --preset deepseek-v2-lite: 27
#     layers, d 2048, 64 routed experts top-6 of width 1408, 2 shared, first layer dense,
#     no q LoRA, kv_lora 512, 16 heads, rope 64 / nope 128 / v 128) in Q8_0 and Q4_0:
#     prefill 512 and decode at depth 0 and 4096, mcmoe beside llama.cpp on the same file,
#     with the KV cache bytes per token of both.
#  2. Synthetic gpt-oss-20b- and Qwen3-30B-A3B-shaped models at reduced depth: decode
#     against the read-bandwidth roofline `mcmoe bench` measures in the same run.
# llama.cpp rows when LLAMA_BIN points at a directory holding llama-bench and
# llama-batched-bench (built from llama.cpp's public source outside this repository).
#   [LLAMA_BIN=/path/to/llama.cpp/build/bin] bash bench/families_speed.sh [OUT_DIR]
# Needs ~26 GB of disk in OUT_DIR (default /tmp/mcmoe-families) and a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-families}
mkdir -p "$out"
mcmoe=./build/mcmoe

for type in q4_0 q8_0; do
  f="$out/deepseek-v2-lite-$type.gguf"
  [ -f "$f" ] || "$mcmoe" synth --preset deepseek-v2-lite --type "$type" -o "$f"
  for depth in 0 4096; do
    for cache in f32 f16; do
      echo "== mcmoe bench $f, depth $depth, cache $cache"
      "$mcmoe" bench -m "$f" --threads 2 --prompt-tokens 512 --gen-tokens 64 --depth "$depth" --reps 2 --cache-type "$cache"
    done
  done
  if [ -n "${LLAMA_BIN:-}" ]; then
    echo "== llama-bench $f (prefill 512, decode 64 from an empty cache)"
    "$LLAMA_BIN/llama-bench" -m "$f" -t 2 -p 512 -n 64 -r 2 -o md
    echo "== llama-batched-bench $f (decode 64 after 4096 prompt tokens; its log states the KV cache size)"
    "$LLAMA_BIN/llama-batched-bench" -m "$f" -t 2 -c 4352 -b 512 -ub 512 -npp 4096 -ntg 64 -npl 1 2>&1 |
      grep -E "KV self size|^\|" || true
  fi
done

# Reduced depth so that the files fit in memory beside the page cache.
declare -A shapes=(
  [gpt-oss-20b]="--preset gpt-oss-20b --layers 8"
  [qwen3-30b-a3b]="--preset qwen3-30b-a3b --layers 16"
)
for name in gpt-oss-20b qwen3-30b-a3b; do
  for type in q4_0 q8_0; do
    f="$out/$name-$type.gguf"
    # shellcheck disable=SC2086
    [ -f "$f" ] || "$mcmoe" synth ${shapes[$name]} --type "$type" -o "$f"
    echo "== mcmoe bench $f"
    "$mcmoe" bench -m "$f" --threads 2 --prompt-tokens 512 --gen-tokens 128 --reps 3
  done
done
