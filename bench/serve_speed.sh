#!/usr/bin/env bash
# Aggregate decode speed of mcmoe serve at 1, 4, 8 and 16 concurrent streams, resident and with
# --expert-cache 50%, beside llama.cpp's llama-server (-np 16 -cb) on the same GGUF, with the
# same client (bench/serve_bench.py): the 2.25 B synthetic Q4_0 model of bench/speed.sh.
#   LLAMA_SERVER=/path/to/llama-server bash bench/serve_speed.sh [MODEL.gguf] [OUT.tsv]
# Each server gets 16 slots of 256 tokens (a context of 4096 in all) and 2 threads; streams are 64 greedy tokens each
# (ignore_eos) after ~40-token prompts.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-/tmp/mcmoe-bench/synth-q4_0.gguf}
out=${2:-/tmp/serve_speed.tsv}
port=18481
[ -f "$model" ] || { echo "no $model: make it with bench/speed.sh" >&2; exit 1; }
wait_health() {
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server did not come up" >&2; return 1
}
bench() {  # label, then the server command
  local label=$1; shift
  "$@" > "/tmp/serve_speed_$label.log" 2>&1 &
  local pid=$!
  wait_health
  python3 bench/serve_bench.py --url "http://127.0.0.1:$port" --label "$label" --concurrency 1,4,8,16 --tokens 64 | tee -a "$out"
  kill "$pid"; wait "$pid" || true
}
printf "server\tstreams\tdecode_tok_s\twall_tok_s\tttft_p50_ms\tttft_p99_ms\titl_p50_ms\titl_p99_ms\ttokens\tmib_read_per_token\n" | tee "$out"
bench mcmoe ./build/mcmoe serve -m "$model" --port $port --parallel 16 --ctx-size 4096 --threads 2
bench mcmoe-cache50 ./build/mcmoe serve -m "$model" --port $port --parallel 16 --ctx-size 4096 --threads 2 --expert-cache 50%
if [ -n "${LLAMA_SERVER:-}" ]; then
  bench llama-server "$LLAMA_SERVER" -m "$model" --port $port -np 16 -cb -c 4096 -t 2 -tb 2
fi
