#!/usr/bin/env bash
# The test suite again, built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) in
# ./build-asan: out-of-bounds reads, use-after-free, leaks and undefined behaviour anywhere
# the tests reach make the test that reached them fail (UBSan does not recover; ASan aborts).
# .ci/run runs it after scripts/test.sh. Arguments go to ctest (e.g. -R Gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
start=$(date +%s)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DMCMOE_SANITIZE=ON \
  -DMCMOE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target mcmoe mcmoe_tests
built=$(date +%s)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
log=build-asan/ctest.log
set +e
ctest --test-dir build-asan --output-on-failure --timeout 1800 -j"$(nproc)" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
done_at=$(date +%s)
reports=$(grep -cE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" || true)
echo "sanitizer build (ASan + UBSan): built in $((built - start)) s, tests in $((done_at - built)) s," \
  "sanitizer reports: $reports"
exit "$rc"
