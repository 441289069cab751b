#!/usr/bin/env bash
# Builds casework with AddressSanitizer and UndefinedBehaviorSanitizer and runs every
# test: the proto contract checks (buf lint, buf breaking against the previous commit)
# and ctest. Installs what it needs on Debian 12 first (scripts/deps.sh --test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh --test

buf=.cache/npm/node_modules/.bin/buf
echo "== buf lint"
"$buf" lint
if git rev-parse -q --verify HEAD~1 >/dev/null 2>&1 &&
   git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  echo "== buf breaking (against HEAD~1)"
  "$buf" breaking --against ".git#ref=HEAD~1"
else
  echo "== buf breaking: no previous commit with a contract; skipped"
fi

build=build/test
jobs=$(nproc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCW_SANITIZE=ON \
  -DCW_BUILD_TESTS=ON -DCW_BUILD_BENCH=ON >/dev/null
echo "== build ($build, Debug + ASan + UBSan)"
ninja -C "$build" -j "$jobs"

echo "== ctest"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 600
