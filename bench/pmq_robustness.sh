#!/usr/bin/env bash
# Issue 16: how PMQ holds up when the calibration text is not the evaluation domain.
# For each model, three calibration settings:
#   wiki   in-domain: wikitext2-valid from byte 150,001 on (the first 20,000 evaluation
#          tokens end near byte 48,000);
#   other  the first ~120 KB of Grimm, Shakespeare and TinyStories, each cut at a line end;
#   self   the model's own expert-balanced text (calibrate --self-generate), no user text;
#   grimm, shakespeare, stories: the three parts of `other` alone (named by --worst-case rows).
# Each setting gets the methods below; every file is scored against the unquantized model on
# two domains: the first 20,000 tokens of wikitext2-valid, and the last 10% of
# war-and-peace-ru (first 20,000 tokens of it).
#   bash bench/pmq_robustness.sh [OUT_DIR]        (default /tmp/mcmoe-pmq-robust)
# Environment: MCMOE (binary, default ./build/mcmoe); MODELS (default "mixtral qwen2moe");
# CALIBS (default "wiki other self"); METHODS (default: all below); EVALS (default
# "wiki wp"); LLAMA_DIR: a folder with MODEL-f16.gguf, MODEL-{Q2_K,Q3_K_S,Q3_K_M}.gguf made
# by llama.cpp's llama-quantize, scored as extra rows (calibration "none").
# Output: OUT_DIR/results.tsv, one row per (model, calibration, method, evaluation).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/mcmoe-pmq-robust}
mkdir -p "$out"
mc=${MCMOE:-./build/mcmoe}
corpus=../shared/corpus

declare -A model_dir=([mixtral]=../shared/models/mixtral-tiny [qwen2moe]=models/qwen2moe-tiny)
# name → quantize flags, pinned to what the recorded rows (bench/pmq_robustness.tsv) were
# made with: GPTQ's dampening defaulted to 0.01 then, so every method without its own --damp
# pins 0.01 (quantize's default is 0.1 since; `pmq-2.5-damp0.1` and `u2-damp0.1` are the
# current defaults), and the first session's PMQ and random rows used the paper's widths
# {1,2,3} (the default is {2,3} since; `pmq23-*` name those).
declare -A method_flags=(
  [u2]="--alloc uniform --bits 2 --damp 0.01"
  [u3]="--alloc uniform --bits 3 --damp 0.01"
  [pmq-2.5]="--bits 2.5 --candidates 1,2,3 --damp 0.01"
  [pmq-2.5-agq]="--bits 2.5 --affinity-hessian --candidates 1,2,3 --damp 0.01"
  [pmq-2.5-prior]="--bits 2.5 --expert-prior 512 --candidates 1,2,3 --damp 0.01"
  [pmq23-2.5]="--bits 2.5 --candidates 2,3 --damp 0.01"
  [pmq23-2.5-agq]="--bits 2.5 --candidates 2,3 --affinity-hessian --damp 0.01"
  [frequency-2.5]="--alloc frequency --bits 2.5 --damp 0.01"
  [random-2.5]="--alloc random --bits 2.5 --candidates 1,2,3 --damp 0.01"
  [pmq-2.5-agq-prior]="--bits 2.5 --affinity-hessian --expert-prior 512 --candidates 1,2,3 --damp 0.01"
  [pmq-2.5-smooth]="--bits 2.5 --alpha 0.5 --beta 0.75 --candidates 1,2,3 --damp 0.01"
  [pmq-2.5-global]="--bits 2.5 --global --damp 0.01"
  [pmq-2.5-router4]="--bits 2.5 --router-bits 4 --candidates 1,2,3 --damp 0.01"
  [pmq-2.0]="--bits 2.0 --candidates 1,2,3 --damp 0.01"
  [pmq-2.5-floor0.5]="--bits 2.5 --freq-floor 0.5 --damp 0.01"
  [pmq-2.5-floor1]="--bits 2.5 --freq-floor 1 --damp 0.01"
  [pmq-2.5-damp0.1]="--bits 2.5 --damp 0.1"
  [u2-damp0.1]="--alloc uniform --bits 2 --damp 0.1"
  [pmq-2.5-rtn]="--bits 2.5 --rtn"
  [u2-rtn]="--alloc uniform --bits 2 --rtn"
  [pmq-2.5-damp0.03]="--bits 2.5 --damp 0.03"
  [pmq-2.5-damp0.3]="--bits 2.5 --damp 0.3"
  [pmq-2.5-damp1]="--bits 2.5 --damp 1"
  [u2-damp1]="--alloc uniform --bits 2 --damp 1"
  # The worst case over calibration domains (--worst-case): @C names setting C's statistics.
  # GPTQ reads the row's own calibration text; the allocation weighs every domain named.
  [pmq-2.5-worst-other]="--bits 2.5 --damp 0.1 --worst-case @other"
  [pmq-2.5-worst-parts]="--bits 2.5 --damp 0.1 --worst-case @grimm,@shakespeare,@stories"
)
methods=${METHODS:-"u2 u3 pmq-2.5 pmq-2.5-agq pmq-2.5-prior pmq-2.5-agq-prior pmq-2.5-smooth pmq-2.5-global
  pmq-2.5-router4 pmq23-2.5 pmq23-2.5-agq frequency-2.5 random-2.5 pmq-2.0 pmq-2.5-floor0.5
  pmq-2.5-floor1 pmq-2.5-damp0.1 u2-damp0.1 pmq-2.5-rtn u2-rtn pmq-2.5-damp0.03 pmq-2.5-damp0.3
  pmq-2.5-damp1 u2-damp1"}

# Evaluation texts.
wiki_eval=$corpus/wikitext2-valid.txt
wp_eval=$out/eval-war-and-peace-tail.txt
if [ ! -f "$wp_eval" ]; then
  size=$(stat -c %s "$corpus/war-and-peace-ru.txt")
  tail -c $((size / 10)) "$corpus/war-and-peace-ru.txt" | sed '1d' > "$wp_eval"  # from a line start
fi
declare -A eval_text=([wiki]=$wiki_eval [wp]=$wp_eval)

# Calibration texts (64 windows of 512 tokens).
calib_wiki=$out/calib-wiki.txt
[ -f "$calib_wiki" ] || tail -c +150001 "$corpus/wikitext2-valid.txt" > "$calib_wiki"
calib_other=$out/calib-other.txt
[ -f "$calib_other" ] || for f in grimm-tales tinyshakespeare tinystories-sample; do
  head -c 120000 "$corpus/$f.txt" | sed '$d'
done > "$calib_other"

stats_of() {  # model calib → path of the statistics, made if missing
  local m=$1 c=$2 s="$out/$1-$2.stats.json"
  if [ ! -f "$s" ]; then
    case $c in
      wiki) $mc calibrate -m "${model_dir[$m]}" -f "$calib_wiki" -o "$s" > "$s.log" 2>&1 ;;
      other) $mc calibrate -m "${model_dir[$m]}" -f "$calib_other" -o "$s" > "$s.log" 2>&1 ;;
      self) $mc calibrate -m "${model_dir[$m]}" --self-generate 36100 -o "$s" > "$s.log" 2>&1 ;;
      # The three parts of `other` alone (for --worst-case over them), cut as `other` cuts
      # them; 20 windows each, as many as the shortest (TinyStories' 30 KB, ~10,600 tokens) holds.
      grimm | shakespeare | stories)
        declare -A part_file=([grimm]=grimm-tales [shakespeare]=tinyshakespeare [stories]=tinystories-sample)
        head -c 120000 "$corpus/${part_file[$c]}.txt" | sed '$d' > "$out/calib-$c.txt"
        $mc calibrate -m "${model_dir[$m]}" -f "$out/calib-$c.txt" --samples 20 -o "$s" > "$s.log" 2>&1 ;;
    esac
  fi
  echo "$s"
}

tsv=$out/results.tsv
[ -f "$tsv" ] || printf 'model\tcalib\tmethod\teval\tppl\tkl\ttop1\troute_agree\tany_flip\tmib\n' > "$tsv"

score() {  # model calib method file
  local m=$1 c=$2 name=$3 f=$4 e j
  for e in ${EVALS:-wiki wp}; do
    grep -q "^$m	$c	$name	$e	" "$tsv" && continue
    j=$($mc ppl -m "$f" -f "${eval_text[$e]}" --max-tokens 20000 --json --kl-base "${model_dir[$m]}" 2>/dev/null)
    python3 - "$m" "$c" "$name" "$e" "$(stat -L -c %s "$f")" "$j" >> "$tsv" <<'PY'
import json, sys
m, c, name, e, size, j = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6])
ra = j.get("routing_agree", [])
agree = sum(x["agree"] for x in ra) / len(ra) if ra else float("nan")
print(f"{m}\t{c}\t{name}\t{e}\t{j['ppl']:.4f}\t{j['kl_mean']:.5f}\t{j['top1_agree']:.4f}\t{agree:.4f}\t"
      f"{j.get('routing_any_flip', float('nan')):.4f}\t{size / 2**20:.3f}")
PY
    tail -1 "$tsv"
  done
}

for m in ${MODELS:-mixtral qwen2moe}; do
  for c in ${CALIBS:-wiki other self}; do
    stats=$(stats_of "$m" "$c")
    for name in $methods; do
      f="$out/$m-$c-$name.gguf"
      flags=${method_flags[$name]}
      while [[ $flags =~ @([a-z]+) ]]; do  # @C: the statistics of calibration setting C
        flags=${flags/@${BASH_REMATCH[1]}/$(stats_of "$m" "${BASH_REMATCH[1]}")}
      done
      # shellcheck disable=SC2086  # the flags are words
      [ -f "$f" ] || $mc quantize -m "${model_dir[$m]}" --stats "$stats" $flags -o "$f" > "$f.log" 2>&1
      score "$m" "$c" "$name" "$f"
    done
  done
  if [ -n "${LLAMA_DIR:-}" ]; then
    for t in Q2_K Q3_K_S Q3_K_M; do
      f="$LLAMA_DIR/$m-$t.gguf"
      [ -f "$f" ] && score "$m" none "llama.cpp-$t" "$f"
    done
  fi
done
