#!/usr/bin/env bash
# The test suite again, built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) in
# ./build-asan: out-of-bounds reads, use-after-free, leaks and undefined behaviour anywhere
# the tests reach make the test that reached them fail (UBSan does not recover; both abort).
# Reports, from the test binary and from every mcmoe process the tests start, are written to
# build-asan/sanitizer-reports/ and printed at the end; any report fails this script, even
# when the test that caused it passed (a child's report exits like an error the test expects).
# .ci/run runs it after scripts/test.sh. Arguments go to ctest (e.g. -R Gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
start=$(date +%s)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DMCMOE_SANITIZE=ON \
  -DMCMOE_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target mcmoe mcmoe_tests
built=$(date +%s)
reports=$PWD/build-asan/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$reports/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$reports/ubsan
set +e
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" "$@"
rc=$?
set -e
done_at=$(date +%s)
n=$(find "$reports" -type f | wc -l)
echo "sanitizer build (ASan + UBSan): built in $((built - start)) s, tests in $((done_at - built)) s," \
  "sanitizer reports: $n"
if ((n > 0)); then
  for f in "$reports"/*; do
    echo "==== $f"
    head -n 60 "$f"
  done
  exit 1
fi
exit "$rc"
