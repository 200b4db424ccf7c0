#!/usr/bin/env bash
# Builds and runs the libFuzzer harnesses in fuzz/ (ASan + UBSan, clang from Debian).
#
#   scripts/fuzz.sh build                      configure and build them in build-fuzz/
#   scripts/fuzz.sh seeds                      assemble seed corpora and dictionaries
#   scripts/fuzz.sh run SECONDS [HARNESS...]   fuzz each (default: all) for SECONDS of wall time
#   scripts/fuzz.sh check [HARNESS...]         run each over its committed corpus and the
#                                              reproducers in fuzz/regressions/, no mutation
#   scripts/fuzz.sh stats                      one line per harness: executions, CPU time,
#                                              coverage and findings, summed over all runs
#   scripts/fuzz.sh minimize [HARNESS...]      merge the working corpus into fuzz/corpus/HARNESS
#                                              (libFuzzer -merge=1: the fewest inputs that keep
#                                              the coverage), kept when it stays under 1 MB
#
# A finding (crash, UB report, leak, a non-mcmoe exception, an input taking over 1 s, an
# allocation over 2 GB) is saved as build-fuzz/findings/HARNESS/{crash,timeout,oom,leak}-*.
# The working corpora grow in build-fuzz/corpus/HARNESS; fuzz/corpus/HARNESS keeps a small
# minimised copy in the repository. Seeds come from the valid files in the repository (and
# tiny models made with `mcmoe synth`); dictionaries are the string literals of the sources
# that read each format, so a new GGUF key or JSON field is in the dictionary at once.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/build-fuzz
mapfile -t harnesses <fuzz/targets.txt
mcmoe=${MCMOE:-$root/build/mcmoe}

# The sources whose string literals make each harness's dictionary.
dict_sources() {
  case $1 in
    gguf) echo src/format/gguf_reader.cpp src/format/tensor_names.h src/model/config.cpp \
               src/model/arch/*.cpp src/model/loader_gguf.cpp src/model/config.h \
               src/tokenizer/gguf_vocab.cpp src/compress/lowrank.h ;;
    gguf_vocab) echo src/tokenizer/gguf_vocab.cpp src/tokenizer/*.cpp ;;
    safetensors) echo src/format/safetensors.cpp src/core/dtype.cpp ;;
    config_json) echo src/model/config.cpp src/model/arch/*.cpp ;;
    tokenizer_json) echo src/tokenizer/hf_json.cpp src/tokenizer/hf_pre_tokenizer.cpp \
                         src/tokenizer/normalizer.cpp ;;
    tokenizer_model) echo src/tokenizer/sentencepiece_proto.cpp src/tokenizer/spm.cpp ;;
    stats) echo src/compress/stats.cpp ;;
    trace) echo src/offload/trace.cpp ;;
    template) echo src/template/*.cpp ;;
    http_request) echo src/server/openai.cpp src/api/tool_calls.cpp ;;
  esac
}

make_dict() {  # HARNESS -> build-fuzz/dict/HARNESS.dict
  mkdir -p "$build/dict"
  # shellcheck disable=SC2046
  grep -ohE '"[A-Za-z0-9_.:<>|/{}%#+ -]{2,48}"' $(dict_sources "$1") | sort -u >"$build/dict/$1.dict"
  if [ "$1" = template ]; then
    printf '"{{"\n"}}"\n"{%%"\n"%%}"\n"{#"\n"#}"\n"{%%-"\n"-%%}"\n' >>"$build/dict/$1.dict"
  fi
}

cmd_build() {
  command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ missing (scripts/setup.sh installs it)" >&2; exit 1; }
  cmake -S . -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DMCMOE_SANITIZE=ON -DMCMOE_BUILD_FUZZ=ON -DMCMOE_BUILD_TESTS=OFF -DMCMOE_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "${harnesses[@]/#/fuzz_}"
}

quietly() {  # runs a seed-making command; on failure shows its output and stops
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    echo "fuzz.sh seeds: failed: $*" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

tiny_model() {  # ARCH TYPE OUT [more synth flags]
  local arch=$1 type=$2 out=$3
  shift 3
  [ -f "$out" ] || quietly "$mcmoe" synth --arch "$arch" --type "$type" --layers 2 --dim 64 \
    --ff 32 --experts 4 --top-k 2 --vocab 300 --heads 2 -o "$out" "$@"
}

cmd_seeds() {
  [ -x "$mcmoe" ] || cmake --build build --target mcmoe
  local s=$build/seeds work=$build/seed-work
  rm -rf "$s"
  mkdir -p "$work"
  for h in "${harnesses[@]}"; do
    mkdir -p "$s/$h"
    [ -d "fuzz/corpus/$h" ] && cp fuzz/corpus/"$h"/* "$s/$h/" 2>/dev/null || true
    make_dict "$h"
  done
  # Tiny models of every family and weight type; a reduced and a low-rank one for the
  # mcmoe.reduce.* / mcmoe.lowrank.* metadata.
  tiny_model mixtral q4_0 "$work/mixtral-q4_0.gguf"
  tiny_model mixtral f16 "$work/mixtral-f16.gguf"
  tiny_model qwen2moe q8_0 "$work/qwen2moe.gguf" --shared-ff 32
  tiny_model qwen3moe mxfp4 "$work/qwen3moe.gguf"
  tiny_model olmoe f32 "$work/olmoe.gguf"
  tiny_model deepseek2 q8_0 "$work/deepseek2.gguf" --kv-lora 32 --rope-dim 16 --nope-dim 16 \
    --v-dim 16 --q-lora 32 --dense-layers 1 --dense-ff 64 --shared-ff 32
  tiny_model deepseek2 q8_0 "$work/deepseek3.gguf" --kv-lora 32 --rope-dim 16 --nope-dim 16 \
    --v-dim 16 --v3-routing --experts 16 --top-k 4
  tiny_model glm4moe q8_0 "$work/glm4moe.gguf" --shared-ff 32 --dense-layers 1 --dense-ff 64
  tiny_model gpt-oss mxfp4 "$work/gpt-oss.gguf"
  tiny_model granitemoe q8_0 "$work/granitemoe.gguf"
  head -c 20000 ../shared/corpus/wikitext2-valid.txt >"$work/text.txt" 2>/dev/null ||
    head -c 20000 README.md >"$work/text.txt"
  [ -f "$work/stats.json" ] || quietly "$mcmoe" calibrate -m "$work/mixtral-f16.gguf" -f "$work/text.txt" \
    --samples 4 --seq 64 --group 32 -o "$work/stats.json"
  for method in merge prune; do
    [ -f "$work/reduced-$method.gguf" ] || quietly "$mcmoe" reduce -m "$work/mixtral-f16.gguf" \
      -f "$work/text.txt" --samples 4 --seq 64 --method $method --keep 0.5 \
      -o "$work/reduced-$method.gguf"
  done
  [ -f "$work/lowrank.gguf" ] || quietly "$mcmoe" lowrank -m "$work/mixtral-f16.gguf" -f "$work/text.txt" \
    --samples 4 --seq 64 --rank 8 --sparse-rows 2 -o "$work/lowrank.gguf"
  [ -f "$work/trace.txt" ] || quietly "$mcmoe" trace -m "$work/mixtral-q4_0.gguf" -f "$work/text.txt" \
    --max-tokens 48 --ctx 32 -o "$work/trace.txt"
  for f in "$work"/*.gguf; do cp "$f" "$s/gguf/"; cp "$f" "$s/gguf_vocab/"; done
  # Real vocabularies: small SentencePiece and BPE ones converted from the test fixtures.
  for d in tests/data/families/qwen3moe_f16 tests/data/families/gpt_oss_f16 tests/data/tiny-spm; do
    [ -f "$d/config.json" ] || continue
    out=$work/vocab-$(basename "$d").gguf
    [ -f "$out" ] || "$mcmoe" convert "$d" -o "$out" --type f16 >/dev/null 2>&1 || true
    [ -f "$out" ] && cp "$out" "$s/gguf_vocab/"
  done
  cp tests/data/tokenizer/llama.cpp/*.gguf "$s/gguf_vocab/" 2>/dev/null || true
  for f in $(find tests/data models -name '*.safetensors' -size -400k); do
    { printf '\x00'; cat "$f"; } >"$s/safetensors/$(echo "$f" | tr / _)"
  done
  printf '\x01{"metadata":{"total_size":16},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors"}}' \
    >"$s/safetensors/index.json"
  for f in tests/data/families/*/config.json models/*/config.json ../shared/models/*/config.json; do
    [ -f "$f" ] && cp "$f" "$s/config_json/$(echo "$f" | tr / _)"
  done
  for f in $(find tests/data -name tokenizer.json -size -400k) models/*/tokenizer.json; do
    [ -f "$f" ] && cp "$f" "$s/tokenizer_json/$(echo "$f" | tr / _)"
  done
  for f in $(find tests/data models ../shared/models -name tokenizer.model -size -600k 2>/dev/null); do
    cp "$f" "$s/tokenizer_model/$(echo "$f" | tr / _)"
  done
  cp "$work/stats.json" "$s/stats/"
  cp "$work/trace.txt" "$s/trace/"
  cp tests/data/templates/*.jinja "$s/template/"
  local i=0
  for body in \
    '{"messages":[{"role":"user","content":"hi"}],"max_tokens":8,"temperature":0.5,"stream":true,"stream_options":{"include_usage":true}}' \
    '{"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"x"}]}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto","stop":["a","b"],"seed":3,"top_p":0.9,"top_k":4}' \
    '{"prompt":"Once upon","max_tokens":4,"stop":"x","ignore_eos":true}' \
    '{"prompt":[1,2,3],"max_completion_tokens":2}' \
    '{"messages":[{"role":"user","content":"hi"}],"add_generation_prompt":true,"chat_template_kwargs":{"enable_thinking":false}}'; do
    for sel in 0 1 2; do
      { printf "\\x0$sel"; printf '%s' "$body"; } >"$s/http_request/body$i-$sel.json"
    done
    i=$((i + 1))
  done
  for h in "${harnesses[@]}"; do echo "seeds: $h: $(ls "$s/$h" | wc -l) files, $(du -sh "$s/$h" | cut -f1)"; done
}

run_env() {
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
}

cmd_run() {
  local seconds=$1
  shift
  local list=("$@")
  ((${#list[@]})) || list=("${harnesses[@]}")
  run_env
  for h in "${list[@]}"; do
    mkdir -p "$build/corpus/$h" "$build/findings/$h" "$build/logs"
    local log=$build/logs/$h.$(date +%Y%m%d-%H%M%S).log
    echo "fuzz: $h for ${seconds}s (log $log)"
    # -timeout=1: an input taking over a second is a hang finding; -malloc_limit_mb=2048: an
    # allocation over 2 GB is one too. The run goes on after a finding (-fork keeps going),
    # so one bug does not end the campaign early.
    # CPU time: the user + system time of the fuzzer and its fork children, which the shell
    # that waits for them prints with `times` at the end of the log. With FUZZ_NICE set (e.g.
    # 19, to fuzz only on idle cores) wall time overstates it.
    # `timeout`: under heavy CPU starvation a fork job once deadlocked inside ASan's allocator
    # (libFuzzer's -timeout alarm fired mid-malloc) and its parent waited for it for hours; a
    # run is now ended 2 minutes past its time, whatever its children do.
    nice -n "${FUZZ_NICE:-0}" bash -c 'cd "$1" && shift && "$@"; times' _ "$build/findings/$h" \
      timeout --kill-after=30 $((seconds + 120)) \
      "$build/fuzz/fuzz_$h" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=4096 \
      -malloc_limit_mb=2048 -dict="$build/dict/$h.dict" -artifact_prefix="$build/findings/$h/" \
      -print_final_stats=1 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
      "$build/corpus/$h" "$build/seeds/$h" >"$log" 2>&1 || true
    tail -n 3 "$log"
  done
}

cmd_check() {
  local list=("$@")
  ((${#list[@]})) || list=("${harnesses[@]}")
  run_env
  mkdir -p "$build/logs"
  local failed=0
  for h in "${list[@]}"; do
    local inputs=()
    for d in "fuzz/corpus/$h" "fuzz/regressions/$h"; do
      [ -d "$d" ] && inputs+=("$d"/*)
    done
    ((${#inputs[@]})) || continue
    if "$build/fuzz/fuzz_$h" -timeout=5 -rss_limit_mb=4096 -malloc_limit_mb=2048 "${inputs[@]}" \
         >"$build/logs/check-$h.log" 2>&1; then
      echo "check: $h: ${#inputs[@]} inputs, no finding"
    else
      echo "check: $h: FAILED (see $build/logs/check-$h.log)"
      failed=1
    fi
  done
  return $failed
}

cmd_minimize() {
  local list=("$@")
  ((${#list[@]})) || list=("${harnesses[@]}")
  run_env
  for h in "${list[@]}"; do
    local out=$build/minimized/$h
    rm -rf "$out"
    mkdir -p "$out"
    "$build/fuzz/fuzz_$h" -merge=1 -timeout=5 -rss_limit_mb=4096 -malloc_limit_mb=2048 "$out" \
      "$build/corpus/$h" "$build/seeds/$h" >"$build/logs/minimize-$h.log" 2>&1 || true
    local kb
    kb=$(du -sk --apparent-size "$out" | cut -f1)
    if ((kb <= 1024)); then
      rm -rf "fuzz/corpus/$h"
      mkdir -p "fuzz/corpus/$h"
      cp "$out"/* "fuzz/corpus/$h/"
      echo "minimize: $h: $(ls "$out" | wc -l) inputs, ${kb} KB -> fuzz/corpus/$h"
    else
      echo "minimize: $h: ${kb} KB minimised, too large to keep in the repository"
    fi
  done
}

cmd_stats() {
  printf '%-16s %5s %12s %10s %8s %8s %9s\n' harness runs executions cpu_min edges features findings
  for h in "${harnesses[@]}"; do
    local execs=0 secs=0 cov=0 ft=0 runs=0
    for log in "$build"/logs/"$h".2*.log; do
      [ -f "$log" ] || continue
      # With -fork the parent prints "#N: cov: C ft: F corp: ... exec/s: E ... time: Ts".
      local last
      last=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -n 1 || true)
      [ -n "$last" ] || continue
      runs=$((runs + 1))
      execs=$((execs + $(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")))
      # `times`' second line: the children's user and system time, as 1m2.345s 0m0.678s.
      secs=$( (grep -E '^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$' "$log" || echo "0m0s 0m0s") | tail -n 1 |
        awk -v s="$secs" '{ split($1, u, /[ms]/); split($2, y, /[ms]/); print s + u[1] * 60 + u[2] + y[1] * 60 + y[2] }')
      local c f
      c=$(sed -E 's/.* cov: ([0-9]+) .*/\1/' <<<"$last")
      f=$(sed -E 's/.* ft: ([0-9]+) .*/\1/' <<<"$last")
      if ((c > cov)); then cov=$c; fi
      if ((f > ft)); then ft=$f; fi
    done
    local n
    # A harness never run has no findings folder: find fails, and under pipefail that ended
    # the script after the header; count 0 instead.
    n=0
    if [ -d "$build/findings/$h" ]; then
      n=$(find "$build/findings/$h" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    fi
    printf '%-16s %5d %12d %10.1f %8d %8d %9d\n' "$h" "$runs" "$execs" "$(awk -v s="$secs" 'BEGIN {print s / 60}')" "$cov" "$ft" "$n"
  done
}

case ${1:-} in
  build) cmd_build ;;
  seeds) cmd_seeds ;;
  run) shift; cmd_run "$@" ;;
  check) shift; cmd_check "$@" ;;
  stats) cmd_stats ;;
  minimize) shift; cmd_minimize "$@" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
