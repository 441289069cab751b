#!/usr/bin/env bash
# Instructions per command in caseworkd, counted by callgrind (valgrind): the measure of the
# server's own work that this machine's noise moves least. Wall-clock CPU per command
# drifts by 5-10% between identical runs here, and up to 2x in slow spells; instruction
# counts move by a few percent (how many commands share a synced batch, and how large the
# memtables are when the case rows are read, still vary).
#
#   bench/server_instructions.sh [BUILD_DIR] [COMMANDS]     # e.g. build/rel 2000
#
# Starts a release caseworkd under callgrind on a fresh log, warms it up with 200 commands,
# zeroes the counters, sends COMMANDS commands (casework-load, 4 in flight, no reads, no
# sign-offs), dumps, and prints the total and the largest inclusive costs per command.
# Needs valgrind (Debian: apt-get install valgrind). About a minute for 2,000 commands.
# Valgrind does not emulate the CPU's SHA extensions, so OpenSSL's SHA-256 runs its slower
# code here: its share of these counts (about 9%) is far above its share of a real run's
# CPU (under 1% in perf). Other parts are not affected that way.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/rel}
count=${2:-2000}
work=$(mktemp -d "${TMPDIR:-/tmp}/casework-callgrind-XXXXXX")
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
command -v valgrind >/dev/null || { echo "needs valgrind: apt-get install valgrind"; exit 2; }

valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" --dump-instr=no \
  "$bin/services/caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/data" \
  --principals "$root/deploy/principals.sample.json" --port-file "$work/port" \
  --metrics-listen off >"$work/caseworkd.log" 2>&1 &
pid=$!
for _ in $(seq 1 3000); do [[ -s $work/port ]] && break; sleep 0.05; done
[[ -s $work/port ]] || { tail "$work/caseworkd.log"; exit 1; }
load() {
  "$bin/bench/casework-load" --server "127.0.0.1:$(cat "$work/port")" --concurrency 4 \
    --read-percent 0 --no-sign-off "$@"
}
load --count 200 >/dev/null
callgrind_control -z "$pid" >/dev/null 2>&1
load --count "$count" --json >"$work/run.json"
callgrind_control -d "$pid" >/dev/null 2>&1
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=

callgrind_annotate --inclusive=yes "$work/callgrind.out.1" >"$work/inclusive.txt" 2>/dev/null
/usr/bin/python3 - "$work/run.json" "$work/inclusive.txt" <<'PY'
import json, re, sys
total = json.load(open(sys.argv[1]))["total"]
ok = max(total["ok"], 1)
print("commands: %d ok, %d errors" % (total["ok"], total["errors"]))
watch = [
    ("PROGRAM TOTALS", "all of caseworkd"),
    ("CommandProcessor::Execute(", "the command handler (CommandProcessor::Execute)"),
    ("shell::ProjectCase(", "  the read-model rows (ProjectCase)"),
    ("RocksEventLog::Impl::SequencerLoop()", "the log's sequencer"),
    ("RocksEventLog::Impl::WriterLoop()", "the log's writer"),
    ("rocksdb::MemTable::Add(", "  memtable inserts"),
    ("rocksdb::DBImpl::WriteToWAL(rocksdb::WriteThread", "  the WAL write"),
    ("RocksEventLog::Impl::AnswererLoop()", "the log's answer thread"),
    ("malloc.c:malloc ", "malloc"),
    ("malloc.c:free ", "free"),
    ("operator new(unsigned long) [", "operator new"),
]
lines = open(sys.argv[2]).read().splitlines()
for needle, label in watch:
    for line in lines:
        if needle in line:
            count = int(re.match(r"\s*([\d,]+)", line).group(1).replace(",", ""))
            print("%-50s %9.0f instructions per command" % (label, count / ok))
            break
PY
