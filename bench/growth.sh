#!/usr/bin/env bash
# How cost grows with concurrency and with the log's size (docs/benchmarks.md), measured
# into OUT_DIR as two tables that bench/plot_growth.py draws:
#
#   OUT_DIR/concurrency.tsv  for each number of calls in flight: a fresh release caseworkd
#     driven by casework-load (commands only, no sign-offs, durable), then casework-echo
#     (the ceiling) with the same answers: calls/s, p50, p99, and the server's CPU per call
#     (user + system time of the server process, from /proc).
#   OUT_DIR/size.tsv  the store alone (bench_store_scale, in-process, 64 appends in flight,
#     durable): one log grown step by step to each size, with a probe of PROBE appends at
#     each step: appends/s and CPU per append (all of it, the part spent in RocksDB's
#     flushes and compactions, and the log's sequencer and writer threads; the rest is the
#     four feeder threads, which read each stream's state and request id first, as a
#     command handler does).
#
#   bench/growth.sh [BUILD_DIR] OUT_DIR
#
# CONCURRENCY ("1 2 4 8 16 32 64 128"), SECONDS_EACH (8), SIZES (in events: "1000000 2000000
# 4000000 6000000 8000000 10000000"), PROBE (300000) and SKIP ("size" or "concurrency")
# shape the runs. The size sweep writes about 1.5 GiB under TMPDIR and takes 4-6 minutes
# on 2 cores; the concurrency sweep about 2.5 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:?usage: bench/growth.sh [BUILD_DIR] OUT_DIR}
out=${2:-}
if [[ -z $out ]]; then
  out=$bin
  bin=$root/build/rel
fi
mkdir -p "$out"
concurrency=${CONCURRENCY:-1 2 4 8 16 32 64 128}
seconds=${SECONDS_EACH:-8}
sizes=${SIZES:-1000000 2000000 4000000 6000000 8000000 10000000}
probe=${PROBE:-300000}
skip=${SKIP:-}
py=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/casework-growth-XXXXXX")
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

wait_port() {
  for _ in $(seq 1 1000); do [[ -s $1 ]] && return 0; sleep 0.01; done
  return 1
}

# One load run against the server `pid` listens for on port file $1; prints one table row.
measure() {
  local port_file=$1 server=$2 n=$3 extra=$4
  local before after
  before=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  "$bin/bench/casework-load" --server "127.0.0.1:$(cat "$port_file")" --concurrency "$n" \
    --duration "$seconds" --read-percent 0 --no-sign-off --json $extra >"$work/run.json"
  after=$(cpu_ticks "$pid")
  "$py" - "$server" "$n" "$((after - before))" "$ticks" "$work/run.json" <<'PY'
import json, sys
server, n, ticks, hz, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t = json.load(open(path))["total"]
cpu = ticks / hz * 1e6 / max(t["ok"], 1)
print("%s\t%d\t%.0f\t%d\t%d\t%d\t%.1f" % (server, n, t["per_second"], t["p50_us"], t["p99_us"], t["errors"], cpu))
PY
}

if [[ $skip != concurrency ]]; then
  printf 'server\tin_flight\tcalls_per_s\tp50_us\tp99_us\terrors\tserver_cpu_us_per_call\n' \
    >"$out/concurrency.tsv"
  for n in $concurrency; do
    rm -rf "$work/data" "$work/port" "$work/echo-port" "$work/responses"
    mkdir -p "$work/responses"
    "$bin/services/caseworkd" --listen 127.0.0.1:0 --insecure-plaintext \
      --data-dir "$work/data" --principals "$root/deploy/principals.sample.json" \
      --port-file "$work/port" --metrics-listen off >"$work/caseworkd.log" 2>&1 &
    pid=$!
    wait_port "$work/port" || { tail "$work/caseworkd.log"; exit 1; }
    measure "$work/port" casework "$n" "--record-responses $work/responses" \
      | tee -a "$out/concurrency.tsv"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    "$bin/bench/casework-echo" --listen 127.0.0.1:0 --port-file "$work/echo-port" \
      --responses "$work/responses" >"$work/echo.log" 2>&1 &
    pid=$!
    wait_port "$work/echo-port" || { tail "$work/echo.log"; exit 1; }
    measure "$work/echo-port" ceiling "$n" "" | tee -a "$out/concurrency.tsv"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
fi

if [[ $skip != size ]]; then
  printf 'events\tappends_per_s\tcpu_us_per_append\tbackground_us_per_append\tsequencer_us_per_append\twriter_us_per_append\n' \
    >"$out/size.tsv"
  for n in 0 $sizes; do
    line=$("$bin/store/bench_store_scale" --events "$n" --dir "$work/store" --keep \
      --probe "$probe" --no-reads 2>/dev/null | tail -1)
    "$py" - "$n" "$line" <<'PY' | tee -a "$out/size.tsv"
import json, sys
n, r = int(sys.argv[1]), json.loads(sys.argv[2])
if n == 0:
    print("0\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f" % (r["empty_appends_per_s"], r["empty_cpu_us"],
          r["empty_background_us"], r["empty_sequencer_us"], r["empty_writer_us"]))
else:
    print("%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f" % (r["events"], r["full_appends_per_s"], r["full_cpu_us"],
          r["full_background_us"], r["full_sequencer_us"], r["full_writer_us"]))
PY
  done
fi
echo "tables in $out; draw them with: /usr/bin/python3 bench/plot_growth.py $out docs/growth.png"
