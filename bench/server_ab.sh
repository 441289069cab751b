#!/usr/bin/env bash
# A/B of two server environments (docs/benchmarks.md): a fresh release caseworkd per run,
# alternating A and B, each run driven by casework-load (commands only, no sign-offs), and
# the CPU per command read from /proc (user + system time): the server's, its log writer
# thread's (the serial end of the command path) and the load tool's.
# On this kind of machine single runs drift by tens of percent; alternating pairs and the
# server's CPU per command say more than one figure.
#
#   bench/server_ab.sh [BUILD_DIR] "ENV_A" "ENV_B"
#     e.g. bench/server_ab.sh build/rel "" "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#
# ENV_A and ENV_B are VAR=value words given to env(1) for the server only. ROUNDS (3),
# SECONDS_EACH (8) and CONCURRENCY (32) shape the runs; SERVER_ARGS adds caseworkd options
# to both, SERVER_ARGS_A and SERVER_ARGS_B to one of them (an A/B of a server option).
# TRANSPORT=tcp (loopback, the default) or uds (a Unix domain socket) for both;
# TRANSPORT_B sets B's apart (an A/B of the transport).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/rel}
env_a=${2:-}
env_b=${3:-}
rounds=${ROUNDS:-3}
seconds=${SECONDS_EACH:-8}
concurrency=${CONCURRENCY:-32}
for t in "${TRANSPORT:-tcp}" "${TRANSPORT_B:-tcp}"; do
  case $t in tcp | uds) ;; *) echo "TRANSPORT is tcp or uds, not $t" >&2; exit 2 ;; esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/casework-ab-XXXXXX")
sock_dir=$(mktemp -d /tmp/cw-ab-XXXXXX)  # short: a socket's path has at most 107 bytes
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work" "$sock_dir"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for r in $(seq 1 "$rounds"); do
  for which in A B; do
    if [[ $which == A ]]; then
      envs=$env_a; args=${SERVER_ARGS_A:-}; transport=${TRANSPORT:-tcp}
    else
      envs=$env_b; args=${SERVER_ARGS_B:-}; transport=${TRANSPORT_B:-${TRANSPORT:-tcp}}
    fi
    rm -rf "$work/data" "$work/port" "$sock_dir/cw.sock"
    listen=127.0.0.1:0
    [[ $transport == uds ]] && listen=unix:$sock_dir/cw.sock
    # shellcheck disable=SC2086
    env $envs "$bin/services/caseworkd" --listen "$listen" --insecure-plaintext \
      --data-dir "$work/data" --principals "$root/deploy/principals.sample.json" \
      --port-file "$work/port" --metrics-listen off ${SERVER_ARGS:-} $args >"$work/caseworkd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 1000); do [[ -s $work/port ]] && break; sleep 0.01; done
    [[ -s $work/port ]] || { echo "caseworkd did not start"; tail "$work/caseworkd.log"; exit 1; }
    writer=$(grep -lx log-writer /proc/"$pid"/task/*/comm | head -1 | cut -d/ -f5)
    before=$(cpu_ticks "$pid")
    writer_before=$(cpu_ticks "$pid/task/$writer")
    target=127.0.0.1:$(cat "$work/port")
    [[ $transport == uds ]] && target=unix:$sock_dir/cw.sock
    "$bin/bench/casework-load" --server "$target" \
      --concurrency "$concurrency" --duration "$seconds" --read-percent 0 --no-sign-off \
      --json >"$work/run.json" 2>>"$work/load.err" &
    load=$!
    # The load tool's own CPU, read just before it exits (it waits for its last answers).
    load_ticks=0
    while kill -0 "$load" 2>/dev/null; do
      load_ticks=$(cpu_ticks "$load" 2>/dev/null || echo "$load_ticks")
      sleep 0.05
    done
    wait "$load" || true
    after=$(cpu_ticks "$pid")
    writer_after=$(cpu_ticks "$pid/task/$writer")
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    /usr/bin/python3 - "$which ($transport)" "$r" "$((after - before))" "$((writer_after - writer_before))" \
      "$load_ticks" "$ticks" "$work/run.json" <<'PY'
import json, sys
which, r = sys.argv[1], sys.argv[2]
server, writer, load, hz = (int(x) for x in sys.argv[3:7])
t = json.load(open(sys.argv[7]))["total"]
per = lambda ticks: ticks / hz * 1e6 / max(t["ok"], 1)
print("%s round %s: %8.0f commands/s  p50 %6d us  p99 %6d us  errors %d  CPU per command: "
      "server %6.1f us (its writer %5.1f), load tool %5.1f us"
      % (which, r, t["per_second"], t["p50_us"], t["p99_us"], t["errors"], per(server),
         per(writer), per(load)))
PY
  done
done
