#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang, ASan and UBSan in build/fuzz, then for
# each target replays its corpus (fuzz/corpus/<target>/) and fuzzes it, one target at a
# time. Prints the executions and findings of each target; exits 1 on any finding.
# docs/reliability.md ("Hostile input: fuzzing") records the figures. CI does not run this
# script: its GCC test build replays each target's corpus and random mutations of it with
# fuzz/replay_main.cc instead (ctest -L fuzz).
#
#   bash scripts/fuzz.sh                       20 s of fuzzing per target (the CI setting)
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh      10 minutes per target
#   FUZZ_RUNS=10000000 bash scripts/fuzz.sh    10 million executions per target (long run)
#   FUZZ_TARGETS="export_fuzz decide_fuzz" bash scripts/fuzz.sh
#   FUZZ_WORKERS=2 FUZZ_RUNS=10000000 ...     the long run with 2 fuzzer processes per target
#                                              (sharing its corpus, each its own seed)
#
# Findings (crash-*, leak-*, timeout-*, oom-*) and the corpora the fuzzers grow go to
# FUZZ_OUT (default ${TMPDIR:-/tmp}/casework-fuzz), outside the repository; the grown
# corpus is reused by the next run. Builds and fuzzing hold /tmp/casework-build.lock, and
# a long run gives it up every 5 minutes, so that other builds on the machine get their
# turn.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${FUZZ_SECONDS:-20}
runs=${FUZZ_RUNS:-}
workers=${FUZZ_WORKERS:-1}
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/casework-fuzz}
lock=/tmp/casework-build.lock
build=build/fuzz
chunk_seconds=300
all_targets=(base64_fuzz event_bytes_fuzz decide_fuzz page_token_fuzz list_filter_fuzz
             checkpoint_fuzz export_fuzz principals_fuzz registry_csv_fuzz config_fuzz)
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"

bash scripts/deps.sh --test
started=$(date +%s)

echo "== configure $build (clang, CW_BUILD_FUZZ)"
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCW_BUILD_FUZZ=ON -DCW_BUILD_BENCH=OFF >/dev/null
echo "== build fuzz targets"
flock "$lock" ninja -C "$build" -j2 fuzz_targets

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$out"

# Runs one libFuzzer session under the lock; prints its executed units on stdout, keeps
# the log in $log. Returns libFuzzer's status (non-zero: a finding).
session() {
  local bin=$1 log=$2
  shift 2
  local rc=0
  flock "$lock" "$bin" -print_final_stats=1 -timeout=10 "$@" >"$log" 2>&1 || rc=$?
  grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{s += $2} END {print s + 0}'
  return $rc
}

# Runs $workers libFuzzer sessions of `bin` at once under the lock, splitting -runs=N
# between them, each with its own seed and log ($log.<worker>); prints the executed units
# of all. Returns non-zero when any found something.
sessions() {
  local bin=$1 log=$2 total=$3
  shift 3
  local rc=0 w pids=() per=$(( (total + workers - 1) / workers ))
  exec 9>"$lock"
  flock 9
  for (( w = 0; w < workers; w++ )); do
    "$bin" -print_final_stats=1 -timeout=10 -seed=$((RANDOM * 32768 + RANDOM + w)) \
      -runs=$per "$@" >"$log.$w" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  flock -u 9
  exec 9>&-
  cat "$log".* | grep -o 'stat::number_of_executed_units: [0-9]*' | awk '{s += $2} END {print s + 0}'
  return $rc
}

summary=()
failed=0
for t in "${targets[@]}"; do
  bin=$build/fuzz/$t
  seeds=fuzz/corpus/$t
  work=$out/corpus/$t
  findings=$out/findings/$t
  mkdir -p "$work" "$findings"
  before=$(find "$findings" -type f | wc -l)
  t0=$(date +%s)
  status=ok

  # Replay every committed seed (regressions included) on its own.
  if ! session "$bin" "$out/$t.replay.log" -runs=0 "$seeds" >/dev/null; then
    status="REPLAY FAILED (see $out/$t.replay.log)"
  fi

  executed=0
  chunk=0
  while [[ $status == ok ]] && (( chunk < 10000 )); do
    chunk=$((chunk + 1))
    args=(-artifact_prefix="$findings/" "$work" "$seeds")
    if [[ -n $runs ]]; then
      (( executed >= runs )) && break
      args=(-runs=$((runs - executed)) -max_total_time=$chunk_seconds "${args[@]}")
    else
      (( chunk > 1 )) && break
      args=(-max_total_time="$seconds" "${args[@]}")
    fi
    log=$out/$t.log
    if [[ -n $runs ]] && (( workers > 1 )); then
      rm -f "$log".*
      if n=$(sessions "$bin" "$log" $((runs - executed)) -max_total_time=$chunk_seconds \
               -artifact_prefix="$findings/" "$work" "$seeds"); then
        executed=$((executed + n))
      else
        executed=$((executed + n))
        status="FINDING (see $log.*)"
      fi
    elif n=$(session "$bin" "$log" "${args[@]}"); then
      executed=$((executed + n))
    else
      executed=$((executed + n))
      status="FINDING (see $log)"
    fi
    if [[ -n $runs ]]; then
      echo "   $t: $executed of $runs executions"
    fi
  done
  found=$(( $(find "$findings" -type f | wc -l) - before ))
  if [[ $status != ok ]] || (( found > 0 )); then
    failed=1
    [[ $status == ok ]] && status="FINDING"
  fi
  line=$(printf '%-18s %12d executions %4d s  findings %d  %s' "$t" "$executed" \
         $(( $(date +%s) - t0 )) "$found" "$status")
  echo "$line"
  summary+=("$line")
done

echo "== fuzz summary (findings in $out/findings; total $(( $(date +%s) - started )) s)"
printf '%s\n' "${summary[@]}"
exit "$failed"
