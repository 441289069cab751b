#!/usr/bin/env bash
# Replay at scale (docs/reliability.md): fills a fresh release caseworkd with N commands
# through casework-load (about one event in nine a signed closure: the county approver
# signs alone, under --closure-approvers-min 1), kills it with SIGKILL and times the
# restart to serving, then verifies the whole log (tree; deep: rules, principals and every
# signature) and replays the ledger, each twice on a freshly started server, reporting
# the time and the server's peak resident memory (VmHWM), and checking that the two deep
# verdicts, the two ledger replays and two exports are byte for byte the same.
#
#   bench/replay_at_scale.sh [BUILD_DIR] [COMMANDS]     defaults: build/rel 1000000
# BUILD_DIR is a release build with caseworkd, casectl and casework-load. The data folder
# lives under $TMPDIR (or /tmp) and is removed at the end unless KEEP=1; WORK=DIR uses (and
# keeps) DIR instead, and a DIR that holds a log from an earlier run is measured again
# without filling.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/rel}
commands=${2:-1000000}
if [[ -n ${WORK:-} ]]; then
  work=$WORK; KEEP=1; mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/casework-replay-XXXXXX")
fi
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [[ ${KEEP:-0} == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
casectl="$bin/clients/casectl"
# A log kept from an earlier run (WORK=DIR) may hold projections of another layout, which
# caseworkd rebuilds before it serves: do that here, so that start() times a restart only.
if [[ -d $work/data/log ]]; then
  echo "bringing the kept log's projections to this build's layout"
  "$bin/services/caseworkd" --data-dir "$work/data" --rebuild-projections \
    >>"$work/caseworkd.log" 2>&1
fi

start() {
  rm -f "$work/port"
  "$bin/services/caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/data" \
    --principals "$root/deploy/principals.sample.json" --port-file "$work/port" \
    --metrics-listen off --closure-approvers-min 1 --closure-county-approvers-min 1 \
    >>"$work/caseworkd.log" 2>&1 &
  pid=$!
  local t0=$(date +%s.%N)
  for _ in $(seq 1 600); do [[ -s $work/port ]] && break; sleep 0.01; done
  [[ -s $work/port ]] || { echo "caseworkd did not start"; tail "$work/caseworkd.log"; exit 1; }
  server=127.0.0.1:$(cat "$work/port")
  started=$(echo "$(date +%s.%N) - $t0" | bc)
}
peak_mib() { awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$pid/status"; }
timed() {  # timed NAME OUT command...: runs with stdout and stderr to OUT, prints seconds
  local t0=$(date +%s.%N)
  "${@:3}" >"$2" 2>&1
  printf '%s %.2f s\n' "$1" "$(echo "$(date +%s.%N) - $t0" | bc)"
}

filled=0; [[ -d $work/data/log ]] && filled=1
start
if (( ! filled )); then
  echo "== filling with $commands commands (128 in flight, sign-offs by the county approver)"
  "$bin/bench/casework-load" --server "$server" --concurrency 128 --count "$commands" \
    --read-percent 0 --sign-offs 1 --duration 3600 | tail -12
fi
echo "== kill -9, restart to serving"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
start
echo "restart to serving: $started s"
du -sh "$work/data/log" | awk '{print "on disk: " $1}'

for run in 1 2; do
  kill "$pid"; wait "$pid" 2>/dev/null || true
  start
  timed "verify (tree, run $run):" "$work/verify-$run.txt" \
    "$casectl" --server "$server" --identity zhou.hua verify
  timed "verify --deep (run $run):" "$work/deep-$run.json" \
    "$casectl" --server "$server" --identity zhou.hua --json verify --deep
  echo "server peak RSS after the deep verification (run $run): $(peak_mib) MiB"
  timed "ledger as of 2100-01-01 (run $run):" "$work/ledger-$run.json" \
    "$casectl" --server "$server" --identity zhou.hua --json as-of ledger --at 2100-01-01
  echo "server peak RSS after the ledger replay (run $run): $(peak_mib) MiB"
  timed "export (run $run):" "$work/export-$run.txt" \
    "$casectl" --server "$server" --identity zhou.hua export --out "$work/export-$run"
done
tail -n 1 "$work/deep-1.json"
for f in deep ledger export; do
  a="$work/$f-1"; b="$work/$f-2"
  [[ -e $a ]] || a="$a.json"; [[ -e $b ]] || b="$b.json"
  if cmp -s "$a" "$b"; then echo "$f: the two runs are byte for byte the same ($(wc -c <"$a") bytes)"
  else echo "$f: the two runs DIFFER"; fi
done
