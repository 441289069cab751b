#!/usr/bin/env bash
# The benchmark tools work end to end, bounded and on loopback only: casework-load drives a
# fresh caseworkd with the full mix (sign-offs with real signatures, reads) and records
# each method's first answer; casework-echo then answers with those, and casework-load
# walks its cases against it. Fails on any error either tool reports.
# Usage: bench_tools_test.sh CASEWORKD CASEWORK_LOAD CASEWORK_ECHO PRINCIPALS_JSON
set -euo pipefail
caseworkd=$1 load=$2 echo_server=$3 principals=$4
work=$(mktemp -d /tmp/casework-bench-tools-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_port() {
  for _ in $(seq 1 600); do [[ -s $1 ]] && return 0; sleep 0.1; done
  echo "no port file $1 within 60 s" >&2
  return 1
}
check() {  # json file, expected methods...
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
total = report["total"]
assert total["errors"] == 0, report
assert total["ok"] > 0, report
seen = {m["method"] for m in report["methods"]}
missing = set(sys.argv[2:]) - seen
assert not missing, ("methods never called", missing, report)
print(f"{sys.argv[1]}: {total['ok']} calls, 0 errors, p50 {total['p50_us']} us")
PY
}

"$caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/data" \
  --principals "$principals" --port-file "$work/port" --metrics-listen off \
  >"$work/caseworkd.log" 2>&1 &
pids+=($!)
wait_for_port "$work/port" || { cat "$work/caseworkd.log"; exit 1; }
# --existing on an empty log: refused before any call, with a reason.
if "$load" --server "127.0.0.1:$(cat "$work/port")" --existing --duration 1 2>"$work/existing-empty.err"; then
  echo "casework-load --existing ran on an empty log" >&2; exit 1
fi
grep -q 'the log holds no case to read' "$work/existing-empty.err" || { cat "$work/existing-empty.err"; exit 1; }
mkdir "$work/responses"
"$load" --server "127.0.0.1:$(cat "$work/port")" --concurrency 4 --count 400 \
  --read-percent 20 --json --record-responses "$work/responses" >"$work/ours.json"
check "$work/ours.json" CreateCase ReviewListing AssignAssistance RecordFieldVisit \
  RecordMeasure RecordInspection SignOffClosure GetCase
for method in CreateCase ReviewListing SignOffClosure GetCase; do
  [[ -s $work/responses/$method.pb ]] || { echo "no recorded answer of $method" >&2; exit 1; }
done
# GetCase on the cases the run above created, chosen at random.
"$load" --server "127.0.0.1:$(cat "$work/port")" --existing --concurrency 4 --count 200 \
  --json >"$work/existing.json"
check "$work/existing.json" GetCase
/usr/bin/python3 - "$work/existing.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert [m["method"] for m in report["methods"]] == ["GetCase"], report
assert report["existing_cases"] >= 4, report  # each of the 4 workers created cases
PY
# A sample of three of them.
"$load" --server "127.0.0.1:$(cat "$work/port")" --existing --existing-max 3 --concurrency 2 \
  --count 20 --json >"$work/sample.json"
check "$work/sample.json" GetCase
/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert r["existing_cases"] == 3, r' \
  "$work/sample.json"

"$echo_server" --listen 127.0.0.1:0 --port-file "$work/echo-port" \
  --responses "$work/responses" >"$work/echo.log" 2>&1 &
pids+=($!)
wait_for_port "$work/echo-port" || { cat "$work/echo.log"; exit 1; }
"$load" --server "127.0.0.1:$(cat "$work/echo-port")" --concurrency 4 --count 400 \
  --read-percent 20 --no-sign-off --json >"$work/echo.json"
check "$work/echo.json" CreateCase ReviewListing AssignAssistance RecordFieldVisit \
  RecordMeasure RecordInspection GetCase

# The same answers on the completion-queue API (--async-threads).
"$echo_server" --listen 127.0.0.1:0 --port-file "$work/echo-async-port" \
  --responses "$work/responses" --async-threads 1 >"$work/echo-async.log" 2>&1 &
pids+=($!)
wait_for_port "$work/echo-async-port" || { cat "$work/echo-async.log"; exit 1; }
"$load" --server "127.0.0.1:$(cat "$work/echo-async-port")" --concurrency 4 --count 400 \
  --read-percent 20 --no-sign-off --json >"$work/echo-async.json"
check "$work/echo-async.json" CreateCase ReviewListing AssignAssistance RecordFieldVisit \
  RecordMeasure RecordInspection GetCase
