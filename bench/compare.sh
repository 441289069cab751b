#!/usr/bin/env bash
# Runs, side by side on this machine: casework (caseworkd + casework-load, durable), the
# ceiling (casework-echo: the same load tool against a CaseService that answers at once
# with the responses caseworkd gave, so gRPC and loopback alone), the PostgreSQL baseline
# (bench/peers/postgres.sh) and the fsync floor (dd with O_DSYNC), and prints the ratios.
# Build first:
#   cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DCW_BUILD_TESTS=OFF
#   ninja -C build/bench caseworkd casework-load casework-echo
# Usage: [BIN=build dir] [ROUNDS=n] bench/compare.sh [clients=32] [seconds=10]
# ROUNDS (1) repeats the three runs, the peer after casework and the ceiling in odd
# rounds and before them in even ones, and prints each round's ratios and their medians:
# this machine drifts by tens of percent from one minute to the next, so one round's
# ratio says less than the median of several. The load tool is closed-loop (each caller
# sends its next call when the last answer arrives): its latencies are service times at
# that concurrency, and pgbench's clients work the same way.
# TRANSPORT=tcp (default: loopback TCP, 127.0.0.1) or TRANSPORT=uds (a Unix domain socket,
# as a client on the same machine may use) for all three: caseworkd, the ceiling and
# PostgreSQL (pgbench through PostgreSQL's own socket).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=${1:-32}
seconds=${2:-10}
rounds=${ROUNDS:-1}
bin=${BIN:-$root/build/bench}  # BIN=build/rel: another release build
py=/usr/bin/python3
transport=${TRANSPORT:-tcp}
case $transport in tcp | uds) ;; *) echo "TRANSPORT is tcp or uds, not $transport" >&2; exit 2 ;; esac

work=$(mktemp -d /tmp/casework-compare-XXXXXX)
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# listen_at NAME: the address a server listens on; target_of NAME PORT_FILE: where to call it.
listen_at() { if [[ $transport == uds ]]; then echo "unix:$work/$1.sock"; else echo 127.0.0.1:0; fi; }
target_of() {
  if [[ $transport == uds ]]; then echo "unix:$work/$1.sock"; else echo "127.0.0.1:$(cat "$2")"; fi
}
wait_port() {
  for _ in $(seq 1 300); do [[ -s $1 ]] && return 0; sleep 0.1; done
  return 1
}
rate() { $py -c 'import json,sys; print(int(json.load(sys.stdin)["total"]["per_second"]))'; }
p99_ms() { $py -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["total"]["p99_us"] / 1000))'; }

echo "== transport: $transport"
echo "== fsync floor: 4 KiB writes with O_DSYNC"
dd if=/dev/zero of="$work/dsync" bs=4k count=500 oflag=dsync 2>&1 | tail -1

run_pg() {
  echo "== PostgreSQL 15, Marten layout, $clients clients, $seconds s"
  pg=$(TRANSPORT=$transport "$root/bench/peers/postgres.sh" "$clients" "$seconds" | tail -1 |
    awk '{print $2}')
  echo "postgres appends/s: $pg"
}

ratios=()
ceiling_ratios=()
for round in $(seq 1 "$rounds"); do
  [[ $rounds -gt 1 ]] && echo "== round $round of $rounds"
  # The machine drifts: every other round the peer runs first (the ceiling needs
  # casework's answers, so it always follows casework).
  if (( round % 2 == 0 )); then run_pg; fi
  rm -rf "$work/data" "$work/port" "$work/echo-port" "$work/responses"
  mkdir -p "$work/responses"
  rm -f "$work"/*.sock
  "$bin/services/caseworkd" --listen "$(listen_at caseworkd)" --insecure-plaintext --data-dir "$work/data" \
    --principals "$root/deploy/principals.sample.json" --port-file "$work/port" \
    --metrics-listen off >"$work/caseworkd.log" 2>&1 &
  pid=$!
  wait_port "$work/port" || { tail "$work/caseworkd.log"; exit 1; }
  echo "== casework: commands only (--read-percent 0; no sign-offs, whose signatures the peer does not check), $clients in flight, $seconds s"
  ours=$("$bin/bench/casework-load" --server "$(target_of caseworkd "$work/port")" \
    --concurrency "$clients" --duration "$seconds" --read-percent 0 --no-sign-off --json \
    --record-responses "$work/responses")
  echo "$ours"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=

  echo "== ceiling: casework-echo (no work, the same responses), $clients in flight, $seconds s"
  "$bin/bench/casework-echo" --listen "$(listen_at echo)" --port-file "$work/echo-port" \
    --responses "$work/responses" >"$work/echo.log" 2>&1 &
  pid=$!
  wait_port "$work/echo-port" || { tail "$work/echo.log"; exit 1; }
  ceiling=$("$bin/bench/casework-load" --server "$(target_of echo "$work/echo-port")" \
    --concurrency "$clients" --duration "$seconds" --read-percent 0 --no-sign-off --json)
  echo "$ceiling"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=

  if (( round % 2 == 1 )); then run_pg; fi
  ours_rate=$(echo "$ours" | rate)
  ceiling_rate=$(echo "$ceiling" | rate)
  echo "casework commands/s: $ours_rate (p99 $(echo "$ours" | p99_ms) ms)"
  echo "ceiling calls/s: $ceiling_rate (p99 $(echo "$ceiling" | p99_ms) ms)"
  ratio=$($py -c "print('%.2f' % ($ours_rate / max(1, $pg)))")
  ratios+=("$ratio")
  echo "ratio casework/postgres: $ratio"
  ceiling_ratio=$($py -c "print('%.2f' % ($ours_rate / max(1, $ceiling_rate)))")
  ceiling_ratios+=("$ceiling_ratio")
  echo "ratio casework/ceiling: $ceiling_ratio"
done
if [[ $rounds -gt 1 ]]; then
  median='import statistics, sys; r = [float(x) for x in sys.argv[2:]]; print("median ratio %s over %d rounds: %.2f (each: %s)" % (sys.argv[1], len(r), statistics.median(r), " ".join(sys.argv[2:])))'
  $py -c "$median" casework/postgres "${ratios[@]}"
  $py -c "$median" casework/ceiling "${ceiling_ratios[@]}"
fi
