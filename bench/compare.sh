#!/usr/bin/env bash
# Runs, side by side on this machine: casework (caseworkd + casework-load, durable), the
# ceiling (casework-echo: the same load tool against a CaseService that answers at once
# with the responses caseworkd gave, so gRPC and loopback alone), the PostgreSQL baseline
# (bench/peers/postgres.sh) and the fsync floor (dd with O_DSYNC), and prints the ratios.
# Build first:
#   cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DCW_BUILD_TESTS=OFF
#   ninja -C build/bench caseworkd casework-load casework-echo
# Usage: [BIN=build dir] bench/compare.sh [clients=32] [seconds=10]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=${1:-32}
seconds=${2:-10}
bin=${BIN:-$root/build/bench}  # BIN=build/rel: another release build

work=$(mktemp -d /tmp/casework-compare-XXXXXX)
port_file=$work/port
"$bin/services/caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/data" \
  --principals "$root/deploy/principals.sample.json" --port-file "$port_file" \
  --metrics-listen off >"$work/caseworkd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do [[ -s $port_file ]] && break; sleep 0.1; done
server=127.0.0.1:$(cat "$port_file")

echo "== fsync floor: 4 KiB writes with O_DSYNC"
dd if=/dev/zero of="$work/dsync" bs=4k count=500 oflag=dsync 2>&1 | tail -1
echo "== casework: commands only (--read-percent 0; no sign-offs, whose signatures the peer does not check), $clients in flight, $seconds s"
mkdir -p "$work/responses"
ours=$("$bin/bench/casework-load" --server "$server" --concurrency "$clients" \
  --duration "$seconds" --read-percent 0 --no-sign-off --json \
  --record-responses "$work/responses")
echo "$ours"
kill $pid 2>/dev/null || true
wait $pid 2>/dev/null || true

echo "== ceiling: casework-echo (no work, the same responses), $clients in flight, $seconds s"
"$bin/bench/casework-echo" --listen 127.0.0.1:0 --port-file "$work/echo-port" \
  --responses "$work/responses" >"$work/echo.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do [[ -s $work/echo-port ]] && break; sleep 0.1; done
ceiling=$("$bin/bench/casework-load" --server "127.0.0.1:$(cat "$work/echo-port")" \
  --concurrency "$clients" --duration "$seconds" --read-percent 0 --no-sign-off --json)
echo "$ceiling"
kill $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
echo "== PostgreSQL 15, Marten layout, $clients clients, $seconds s"
pg=$("$root/bench/peers/postgres.sh" "$clients" "$seconds" | tail -1 | awk '{print $2}')
echo "postgres appends/s: $pg"
rate() { /usr/bin/python3 -c 'import json,sys; print(int(json.load(sys.stdin)["total"]["per_second"]))'; }
ours_rate=$(echo "$ours" | rate)
ceiling_rate=$(echo "$ceiling" | rate)
echo "casework commands/s: $ours_rate"
echo "ceiling calls/s: $ceiling_rate"
/usr/bin/python3 -c "print('ratio casework/postgres: %.2f' % ($ours_rate / max(1, $pg)))"
/usr/bin/python3 -c "print('ratio casework/ceiling: %.2f' % ($ours_rate / max(1, $ceiling_rate)))"
