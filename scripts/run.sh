#!/usr/bin/env bash
# Installs what casework needs (Debian 12), builds it, starts caseworkd on an embedded
# RocksDB store in ./data, loads the sample city through the API, and prints how to
# query it. Run it again to restart the server on the same data.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/deps.sh

build=build/release
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCW_BUILD_TESTS=OFF \
  -DCW_BUILD_BENCH=OFF >/dev/null
echo "== build ($build)"
ninja -C "$build" caseworkd casectl

data=${CASEWORK_DATA:-$root/data}
listen=${CASEWORK_LISTEN:-127.0.0.1:7070}
mkdir -p "$data"
if [[ -f "$data/caseworkd.pid" ]] && kill -0 "$(cat "$data/caseworkd.pid")" 2>/dev/null; then
  echo "== stopping the running caseworkd (pid $(cat "$data/caseworkd.pid"))"
  kill "$(cat "$data/caseworkd.pid")"
  for _ in $(seq 1 100); do kill -0 "$(cat "$data/caseworkd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
rm -f "$data/port"
echo "== starting caseworkd on $listen (data in $data, log in $data/caseworkd.log)"
nohup "$build/services/caseworkd" --listen "$listen" --insecure-plaintext \
  --data-dir "$data" --principals deploy/principals.sample.json --port-file "$data/port" \
  >>"$data/caseworkd.log" 2>&1 &
echo $! >"$data/caseworkd.pid"
for _ in $(seq 1 300); do [[ -s "$data/port" ]] && break; sleep 0.1; done
if [[ ! -s "$data/port" ]]; then
  echo "caseworkd did not start; the end of its log:" >&2
  tail -20 "$data/caseworkd.log" >&2
  exit 1
fi

casectl="$build/clients/casectl"
echo "== loading the sample city (retries are safe: request ids are deterministic)"
"$casectl" --server "$listen" seed --cases "${CASEWORK_SAMPLE_CASES:-400}"

cat <<TXT

caseworkd is running (pid $(cat "$data/caseworkd.pid")), plaintext on $listen.
Query it as one of the sample identities in deploy/principals.sample.json:

  export CASEWORK_SERVER=$listen CASEWORK_IDENTITY=li.na
  $casectl list --filter 'state = ASSISTED' --page-size 10
  $casectl get c-00001
  $casectl events c-00001
  $casectl --json get c-00001

Stock gRPC tools work too (reflection and grpc.health.v1 are on).
Stop it with: kill \$(cat $data/caseworkd.pid)
TXT
