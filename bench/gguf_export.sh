#!/usr/bin/env bash
# mcmoe's llama.cpp GGUFs (`quantize --format gguf`) against llama-quantize's presets, judged by
# llama.cpp itself: llama-perplexity --kl-divergence against its own F16 run, on the first
# 20,000 tokens of wikitext2-valid (39 windows of 512). For each preset:
#   - llama-quantize without and with an importance matrix (llama-imatrix, 100 windows of 512
#     of the calibration mix; the i-quant presets require one);
#   - mcmoe at the preset's file size (--size = the preset's bytes) as quantize does it by
#     default: exact allocation over the output errors scaled by each tensor's measured KL
#     (--kl-cost N, N = KL_COST, default 8; KL_COST=0 leaves the row out), GPTQ on ggml's grids,
#     calibrated on the same mix;
#   - the same with the output errors alone (--kl-cost 0, the first sessions' tables);
#   - mcmoe's GPTQ rounding with the preset's exact types (--types-from the imatrix file), which
#     separates rounding from allocation.
#   SKIP="size same" leaves out the last two mcmoe rows (e.g. when they are already recorded).
# Calibration never sees Wikipedia (bench/calib_mix.sh).
# Needs llama.cpp built outside this repository (c392e50 was used):
#   LLAMA_BIN=/path/to/llama.cpp/build/bin bash bench/gguf_export.sh [MODEL_DIR] [OUT_DIR]
# MODEL_DIR defaults to ../shared/models/mixtral-tiny; PRESETS and TYPES override the lists.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LLAMA_BIN:?set LLAMA_BIN to the build/bin folder of llama.cpp}"
model=${1:-../shared/models/mixtral-tiny}
out=${2:-/tmp/mcmoe-gguf-export}/$(basename "$model")
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
presets=${PRESETS:-Q2_K Q3_K_S Q3_K_M Q4_K_M IQ3_XXS IQ2_XXS}
types=${TYPES:-q2_K,q3_K,q4_K,q5_K,q6_K,q8_0,iq4_xs}
kl_cost=${KL_COST:-8}  # the --kl-cost row's windows; 0 leaves it out
source bench/calib_mix.sh
calib=$out/calib-mix.txt
make_calib_mix "$calib"
evaltext=../shared/corpus/wikitext2-valid.txt

f16=$out/F16.gguf
[ -f "$f16" ] || $mc convert "$model" --type f16 -o "$f16" >/dev/null
imat=$out/imatrix.dat
[ -f "$imat" ] || "$LLAMA_BIN/llama-imatrix" -m "$f16" -f "$calib" -o "$imat" -c 512 --chunks 100 -t 2 \
  >"$out/imatrix.log" 2>&1
base=$out/f16.kld
[ -f "$base" ] || "$LLAMA_BIN/llama-perplexity" -m "$f16" -f "$evaltext" -c 512 --chunks 39 -t 2 \
  --kl-divergence-base "$base" >"$out/f16.ppl.log" 2>&1

# One table row: label, file; llama-perplexity's PPL, mean KL and top-1 agreement.
score() {
  local label=$1 f=$2 log=$out/$(basename "$2" .gguf).kld.log
  [ -f "$log" ] || "$LLAMA_BIN/llama-perplexity" -m "$f" --kl-divergence-base "$base" --kl-divergence -t 2 \
    >"$log" 2>&1
  local ppl kl top1
  ppl=$(sed -n 's/^Mean PPL(Q) *: *\([0-9.]*\).*/\1/p' "$log")
  kl=$(sed -n 's/^Mean    KLD: *\([0-9.]*\).*/\1/p' "$log")
  top1=$(sed -n 's/^Same top p: *\([0-9.]*\).*/\1/p' "$log")
  printf '| %s | %s | %.3f | %s | %s | %s |\n' "$label" "$(stat -L -c %s "$f")" \
    "$(stat -L -c %s "$f" | awk '{print $1 / 1048576}')" "$ppl" "$kl" "$top1"
}

echo "| file | bytes | MiB | PPL | KL to F16 | top-1 % |"
echo "|---|---|---|---|---|---|"
score "F16" "$f16"
for p in $presets; do
  plain=$out/$p.gguf
  with=$out/$p-imat.gguf
  case $p in
    IQ*) ;;  # llama-quantize refuses i-quants without an importance matrix
    *) [ -f "$plain" ] || "$LLAMA_BIN/llama-quantize" "$f16" "$plain" "$p" 2 >"$out/$p.quantize.log" 2>&1
       score "llama-quantize $p" "$plain" ;;
  esac
  [ -f "$with" ] || "$LLAMA_BIN/llama-quantize" --imatrix "$imat" "$f16" "$with" "$p" 2 >"$out/$p-imat.quantize.log" 2>&1
  score "llama-quantize $p + imatrix" "$with"
  size=$(stat -L -c %s "$with")
  if [ "$kl_cost" -gt 0 ]; then
    klc=$out/mcmoe-kl$kl_cost-$p.gguf
    if [ -f "$klc" ] || $mc quantize --format gguf -m "$f16" -f "$calib" --samples 100 --seq 512 --types "$types" \
      --size "$size" --kl-cost "$kl_cost" -o "$klc" >"$out/mcmoe-kl$kl_cost-$p.log" 2>&1; then
      score "mcmoe at $p's size, --kl-cost $kl_cost" "$klc"
    else
      echo "| mcmoe at $p's size, --kl-cost $kl_cost | — | — | — | — | $(grep -m1 error: "$out/mcmoe-kl$kl_cost-$p.log" | sed 's/|/\\|/g') |"
    fi
  fi
  [[ " ${SKIP:-} " == *" size "* ]] && [[ " ${SKIP:-} " == *" same "* ]] && continue
  ours=$out/mcmoe-$p.gguf
  if [[ " ${SKIP:-} " == *" size "* ]]; then :
  elif [ -f "$ours" ] || $mc quantize --format gguf -m "$f16" -f "$calib" --samples 100 --seq 512 --types "$types" \
    --size "$size" --kl-cost 0 -o "$ours" >"$out/mcmoe-$p.log" 2>&1; then
    score "mcmoe at $p's size, output errors alone (--kl-cost 0)" "$ours"
  else
    echo "| mcmoe at $p's size, --kl-cost 0 | — | — | — | — | $(grep -m1 error: "$out/mcmoe-$p.log" | sed 's/|/\\|/g') |"
  fi
  same=$out/mcmoe-types-$p.gguf
  if [[ " ${SKIP:-} " == *" same "* ]]; then :
  elif [ -f "$same" ] || $mc quantize --format gguf -m "$f16" -f "$calib" --samples 100 --seq 512 --types-from "$with" \
    -o "$same" >"$out/mcmoe-types-$p.log" 2>&1; then
    score "mcmoe GPTQ, $p's types" "$same"
  else
    echo "| mcmoe GPTQ, $p's types | — | — | — | — | $(grep -m1 error: "$out/mcmoe-types-$p.log" | sed 's/|/\\|/g') |"
  fi
done | tee "$out/table.md"
