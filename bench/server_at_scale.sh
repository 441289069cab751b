#!/usr/bin/env bash
# Serving at scale (docs/benchmarks.md): a release caseworkd on a log of COMMANDS commands,
# measured beside a fresh one in the same run.
#
#   bench/server_at_scale.sh [BUILD_DIR] [COMMANDS]     defaults: build/rel 10000000
#
# Fills a fresh caseworkd through casework-load (128 in flight; each case created,
# reviewed, assigned, visited three times, measured, inspected and closed by the county
# approver's signed sign-off, as bench/replay_at_scale.sh does), restarts it, and measures:
#   - restart to serving, and the server's resident memory after the restart;
#   - GetCase on cases chosen at random from the whole log (casework-load --existing), at
#     1 and at 32 in flight;
#   - commands at 32 in flight on the big log and on a fresh, empty one, ROUNDS times each,
#     alternating (the machine drifts; pairs say more than single runs);
#   - the big server's peak and current resident memory (VmHWM, VmRSS) at the end.
# Memory is shown as the kernel sees it (VmHWM, VmRSS) and as the event log reports its
# parts in the server's metrics (casework_log_memory_bytes).
# BUILD_DIR is a release build with caseworkd and casework-load. The data lives under
# $TMPDIR (or /tmp) and is removed at the end unless KEEP=1; WORK=DIR uses (and keeps) DIR,
# and a DIR that holds a filled log is measured again without filling. SERVER_ARGS adds
# caseworkd options to both servers (for example "--block-cache-mib 32"); SECONDS_EACH
# (default 10) and ROUNDS (default 2) shape the runs; WRITE_SECONDS (default 0: none) adds
# a run of 128 writing clients on the big log with its memory sampled every 2 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/rel}
commands=${2:-10000000}
seconds=${SECONDS_EACH:-10}
rounds=${ROUNDS:-2}
py=/usr/bin/python3
if [[ -n ${WORK:-} ]]; then
  work=$WORK; KEEP=1; mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/casework-scale-XXXXXX")
fi
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work/fresh"
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
load="$bin/bench/casework-load"
# A log kept from an earlier run (WORK=DIR) may hold projections of another layout, which
# caseworkd rebuilds before it serves: do that here, so that start() times a restart only.
if [[ -d $work/data/log ]]; then
  echo "bringing the kept log's projections to this build's layout"
  "$bin/services/caseworkd" --data-dir "$work/data" --rebuild-projections \
    >>"$work/caseworkd.log" 2>&1
fi

start() {  # start DATA_DIR: starts caseworkd on it; sets pid, server, started (seconds)
  rm -f "$work/port"
  # shellcheck disable=SC2086
  "$bin/services/caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$1" \
    --principals "$root/deploy/principals.sample.json" --port-file "$work/port" \
    --metrics-listen 127.0.0.1:0 --closure-approvers-min 1 --closure-county-approvers-min 1 \
    ${SERVER_ARGS:-} >"$work/caseworkd.log" 2>&1 &
  pid=$!
  local t0
  t0=$(date +%s.%N)
  for _ in $(seq 1 1000); do [[ -s $work/port ]] && break; sleep 0.01; done
  [[ -s $work/port ]] || { echo "caseworkd did not start"; tail "$work/caseworkd.log"; exit 1; }
  server=127.0.0.1:$(cat "$work/port")
  metrics=$(grep -o 'metrics on http://[0-9.:]*/metrics' "$work/caseworkd.log" | tail -1 | cut -d' ' -f3)
  started=$(echo "$(date +%s.%N) - $t0" | bc)
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
memory() {  # the server's resident memory, and the event log's parts from its metrics
  awk '/VmHWM|VmRSS/ {printf "%s %d MiB  ", $1, $2 / 1024}' "/proc/$pid/status"
  "$py" -c '
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
parts = re.findall(r"casework_log_memory_bytes\{part=\"(\w+)\"\} (\d+)", text)
print("log: " + ", ".join("%s %d MiB" % (p, int(b) >> 20) for p, b in parts))' "$metrics"
}
row() {  # row LABEL JSON: one line of the run's total
  "$py" -c '
import json, sys
label, j = sys.argv[1], json.loads(sys.argv[2])
t = j["total"]
print("%-46s %8.0f/s  p50 %6d us  p99 %6d us  p99.9 %6d us  errors %d" % (
    label, t["per_second"], t["p50_us"], t["p99_us"], t["p999_us"], t["errors"]))
for m in j["methods"]:
    for code, n in m.get("error_codes", {}).items():
        print("  %s errors: %s x %d" % (m["method"], code, n))' "$1" "$2"
}

if [[ ! -d $work/data/log ]]; then
  start "$work/data"
  echo "== filling with $commands commands (128 in flight, sign-offs by the county approver)"
  "$load" --server "$server" --concurrency 128 --count "$commands" --read-percent 0 \
    --sign-offs 1 --duration 3600 --run-id fill | tail -4
  echo "after the fill: $(memory)"
  stop
fi
du -sh "$work/data/log" | awk '{print "on disk: " $1}'

start "$work/data"
echo "restart to serving: $started s; $(memory)"
for c in 1 32; do
  out=$("$load" --server "$server" --existing --concurrency "$c" --duration "$seconds" --json \
    2>"$work/existing.err") || true
  row "GetCase, random existing case, $c in flight" "$out"
done
grep -h 'existing cases collected' "$work/existing.err" || true
echo "after the reads: $(memory)"
stop

for r in $(seq 1 "$rounds"); do
  for which in big fresh; do
    if [[ $which == big ]]; then start "$work/data"; else rm -rf "$work/fresh"; start "$work/fresh"; fi
    # A run with errors exits 1 and still prints its figures (the row shows the errors).
    out=$("$load" --server "$server" --concurrency 32 --duration "$seconds" --read-percent 0 \
      --sign-offs 1 --json --run-id "r$r-$which-$RANDOM" 2>>"$work/load.err") || true
    row "commands, 32 in flight, $which log (round $r)" "$out"
    [[ $which == big ]] && echo "  $(memory)"
    stop
  done
done

# Sustained writes (WRITE_SECONDS > 0): 128 writing clients on the big log for that long,
# the server's memory sampled every 2 s (the highest resident sample, VmHWM at the end,
# and the log's parts at the highest sample).
if (( ${WRITE_SECONDS:-0} > 0 )); then
  start "$work/data"
  "$load" --server "$server" --concurrency 128 --duration "$WRITE_SECONDS" --read-percent 0 \
    --sign-offs 1 --json --run-id "w-$RANDOM" >"$work/write.json" 2>>"$work/load.err" &
  lpid=$!
  highest=0 at=
  while kill -0 "$lpid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
    if (( rss > highest )); then highest=$rss; at=$(memory); fi
    sleep 2
  done
  wait "$lpid" || true
  row "commands, 128 in flight, big log, $WRITE_SECONDS s" "$(cat "$work/write.json")"
  echo "  highest resident sample $highest MiB: $at"
  echo "  at the end: $(memory)"
  stop
fi
