#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite with CTest. Tests that compare against
# ../shared (the reference models and corpus) skip themselves when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure --timeout 1200 "$@"
