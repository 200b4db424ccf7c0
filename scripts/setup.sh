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
