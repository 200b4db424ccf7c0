#!/usr/bin/env bash
# Decode/prefill speed of mcmoe on synthetic Mixtral-layout models of >= 1 GiB, and of
# llama.cpp on the same files when LLAMA_BENCH points at a llama-bench binary (built from
# llama.cpp's public source outside this repository).
#   bash bench/speed.sh [OUT_DIR]      (default /tmp/mcmoe-bench; needs ~4 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-bench}
mkdir -p "$out"
shape=(--arch mixtral --layers 10 --dim 2048 --ff 4096 --experts 8 --top-k 2 --vocab 32000 --heads 16 --kv-heads 4)
for type in q8_0 q4_0; do
  f="$out/synth-$type.gguf"
  [ -f "$f" ] || ./build/mcmoe synth "${shape[@]}" --type "$type" -o "$f"
  echo "== mcmoe bench $f (2 threads)"
  ./build/mcmoe bench -m "$f" --threads 2 --prompt-tokens 512 --gen-tokens 128 --reps 3
  if [ -n "${LLAMA_BENCH:-}" ]; then
    echo "== llama-bench $f (2 threads)"
    "$LLAMA_BENCH" -m "$f" -t 2 -p 512 -n 128 -r 3 -o md
  fi
done
