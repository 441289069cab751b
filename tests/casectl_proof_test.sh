#!/usr/bin/env bash
# casectl's proof commands verify what they say they verify, against a real caseworkd on
# loopback: a checkpoint and an inclusion proof verify under the server's verifier key,
# do not under another key (exit status 5), and without --key nothing is claimed; keygen
# and export write their files whole or fail.
# Usage: casectl_proof_test.sh CASEWORKD CASEWORK_LOAD CASECTL PRINCIPALS_JSON
set -euo pipefail
caseworkd=$1 load=$2 casectl=$3 principals=$4
py=/usr/bin/python3
work=$(mktemp -d /tmp/casework-casectl-proof-XXXXXX)
pid= fork_pid=
watch_pid=
cleanup() {
  [[ -n $watch_pid ]] && { kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; }
  [[ -n $pid ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  [[ -n $fork_pid ]] && { kill "$fork_pid" 2>/dev/null || true; wait "$fork_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

"$caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/data" \
  --principals "$principals" --port-file "$work/port" --metrics-listen off \
  >"$work/caseworkd.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -s $work/port ]] && break; sleep 0.1; done
[[ -s $work/port ]] || { cat "$work/caseworkd.log"; exit 1; }
server=127.0.0.1:$(cat "$work/port")
"$load" --server "$server" --concurrency 2 --count 40 --read-percent 0 --no-sign-off \
  --json >"$work/load.json"
sleep 1.5  # a checkpoint is signed every second while the log grows

# The verifier key of a 32-byte Ed25519 seed (C2SP signed note: name+hash+base64(0x01||key)).
vkey() { "$py" "$(dirname "$0")/verifier_key.py" "$1"; }
good=$(vkey "$work/data/log.key")
head -c 32 /dev/urandom >"$work/other.key"
bad=$(vkey "$work/other.key")
ctl() { "$casectl" --server "$server" --identity zhou.hua --json "$@"; }

ctl proof checkpoint --key "$good" >"$work/cp.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified"] is True and d["tree_size"] >= 40, d' "$work/cp.json"
rc=0; ctl proof checkpoint --key "$bad" >"$work/cp-bad.json" || rc=$?
[[ $rc == 5 ]] || { echo "checkpoint under another key: exit $rc, want 5" >&2; exit 1; }
# --out keeps only a note that verified: under the good key it is written, under another
# the file written before is left as it was, with nothing beside it.
ctl proof checkpoint --key "$good" --out "$work/kept.note" >/dev/null
grep -q '^— ' "$work/kept.note" || { echo "--out holds no signed note" >&2; exit 1; }
printf 'an earlier note\n' >"$work/kept.note"
rc=0; ctl proof checkpoint --key "$bad" --out "$work/kept.note" >/dev/null || rc=$?
[[ $rc == 5 ]] && [[ "$(cat "$work/kept.note")" == "an earlier note" ]] &&
  [[ ! -e "$work/kept.note.partial" ]] ||
  { echo "a checkpoint that did not verify was written to --out (exit $rc)" >&2; exit 1; }

ctl proof inclusion --position 7 --key "$good" >"$work/inc.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified_under_checkpoint"] is True, d' "$work/inc.json"
rc=0; ctl proof inclusion --position 7 --key "$bad" >"$work/inc-bad.json" || rc=$?
[[ $rc == 5 ]] || { echo "inclusion under another key: exit $rc, want 5" >&2; exit 1; }
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified_under_checkpoint"] is False, d' "$work/inc-bad.json"
ctl proof inclusion --position 7 >"$work/inc-nokey.json" 2>"$work/inc-nokey.err"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "verified_under_checkpoint" not in d, d' "$work/inc-nokey.json"
grep -q "no --key" "$work/inc-nokey.err"

# The log only grew: from the checkpoint kept above to a later one.
first=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tree_size"])' "$work/cp.json")
root=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["root_hash"])' "$work/cp.json")
"$load" --server "$server" --concurrency 2 --count 20 --read-percent 0 --no-sign-off \
  --json >"$work/load2.json"
sleep 1.5
ctl proof consistency --first "$first" --first-root "$root" --key "$good" >"$work/con.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified"] is True and d["second_tree_size"] > d["first_tree_size"], d' "$work/con.json"
wrong=$("$py" -c 'import sys; r=sys.argv[1]; print(("1" if r[0] == "0" else "0") + r[1:])' "$root")
rc=0; ctl proof consistency --first "$first" --first-root "$wrong" --key "$good" >"$work/con-bad.json" || rc=$?
[[ $rc == 5 ]] || { echo "consistency from another root: exit $rc, want 5" >&2; exit 1; }
# keygen: the key file appears whole with mode 0600, is never overwritten, and leaves no
# temporary file behind.
"$casectl" keygen --out "$work/keys/approver.key" >/dev/null 2>&1 && {
  echo "keygen into a missing directory succeeded" >&2; exit 1; }
mkdir "$work/keys"
"$casectl" keygen --out "$work/keys/approver.key" >/dev/null
[[ $(stat -c %a "$work/keys/approver.key") == 600 ]] || { echo "key file not 0600" >&2; exit 1; }
before=$(sha256sum "$work/keys/approver.key")
rc=0; "$casectl" keygen --out "$work/keys/approver.key" >/dev/null 2>&1 || rc=$?
[[ $rc != 0 && $(sha256sum "$work/keys/approver.key") == "$before" ]] || {
  echo "keygen overwrote a key file" >&2; exit 1; }
[[ $(ls "$work/keys") == approver.key ]] || { echo "keygen left: $(ls "$work/keys")" >&2; exit 1; }

# A closure signed two ways: offline with `sign` (the version and the latest leaf hash
# given, as `get` shows them), then at once with `sign-off --key`, which reads the hash from
# the server while the case is at the version given, and refuses when it has moved on.
admin() { "$casectl" --server "$server" --identity admin --json "$@"; }
field() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
"$casectl" --json keygen --out "$work/keys/county.key" >"$work/county.json"
"$casectl" --json keygen --out "$work/keys/city.key" >"$work/city.json"
admin admin register-key approver.dongshan --public-key "$(field "$work/county.json" public_key)" \
  --level county >/dev/null
admin admin register-key sun.li --public-key "$(field "$work/city.json" public_key)" \
  --level city >/dev/null
# The principals file as started, reloaded on request: recorded before, by the server.
admin admin reload-principals >"$work/reload.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["recorded_now"] is False and d["recorded_by"] == "caseworkd" and d["identities"] > 10, d' "$work/reload.json"
# The server's log says who asked, whether or not the log records anything.
grep -q "principals reloaded at the request of admin" "$work/caseworkd.log" || {
  echo "a reload by an administrator left no line in the server's log" >&2; exit 1; }
ctl list --filter 'state = VERIFIED' --page-size 1 >"$work/verified.json"
case_id=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["case_id"])' "$work/verified.json")
ctl get "$case_id" >"$work/case.json"
version=$(field "$work/case.json" version)
latest=$("$py" -c 'import base64,json,sys; print(base64.b64decode(json.load(open(sys.argv[1]))["last_leaf_hash"]).hex())' "$work/case.json")
[[ ${#latest} == 64 ]] || { echo "get gave no latest leaf hash: $(cat "$work/case.json")" >&2; exit 1; }
"$casectl" --server "$server" --identity zhou.hua get "$case_id" | grep -q "Latest leaf 最新事件叶哈希 *$latest" || {
  echo "get does not show the latest leaf hash $latest" >&2; exit 1; }
"$casectl" --json sign "$case_id" --expected-version "$version" --inspection-id insp-1 \
  --latest "$latest" --key "$work/keys/county.key" >"$work/signed.json"
grep -q "latest: $latest" <(field "$work/signed.json" statement) || {
  echo "the signed statement does not name the latest leaf: $(cat "$work/signed.json")" >&2; exit 1; }
rc=0; "$casectl" sign "$case_id" --expected-version "$version" --inspection-id insp-1 \
  --latest "${latest:0:63}" --key "$work/keys/county.key" >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || { echo "sign with a 63-digit --latest: exit $rc, want 2" >&2; exit 1; }
"$casectl" --server "$server" --identity approver.dongshan --json sign-off "$case_id" \
  --expected-version "$version" --inspection-id insp-1 --key-id "$(field "$work/signed.json" key_id)" \
  --signature "$(field "$work/signed.json" signature)" >"$work/county-signed.json" || {
  echo "sign-off with a signature made by sign: $(cat "$work/county-signed.json")" >&2; exit 1; }
# Options of signing here (--key, --verify-with, --latest) with a signature made by sign:
# refused (exit 2), nothing sent, rather than a proof asked for and silently skipped.
for extra in "--verify-with $good" "--latest $latest" "--key $work/keys/city.key"; do
  rc=0
  # shellcheck disable=SC2086
  "$casectl" --server "$server" --identity sun.li sign-off "$case_id" \
    --expected-version "$((version + 1))" --inspection-id insp-1 --key-id "$(field "$work/signed.json" key_id)" \
    --signature "$(field "$work/signed.json" signature)" $extra >/dev/null 2>"$work/mixed.err" || rc=$?
  [[ $rc == 2 ]] || { echo "sign-off --signature with $extra: exit $rc, $(cat "$work/mixed.err")" >&2; exit 1; }
done
# --verify-with: signed only once an inclusion proof under a checkpoint signed by that key
# shows the leaf is in the log. Under another key: not signed, nothing sent (exit 5, not
# verified).
rc=0; "$casectl" --server "$server" --identity sun.li sign-off "$case_id" \
  --expected-version "$((version + 1))" --inspection-id insp-1 --key "$work/keys/city.key" \
  --verify-with "$bad" >/dev/null 2>"$work/unproved.err" || rc=$?
[[ $rc == 5 ]] && grep -q "not signed" "$work/unproved.err" || {
  echo "sign-off --verify-with another key: exit $rc, $(cat "$work/unproved.err")" >&2; exit 1; }
ctl get "$case_id" >"$work/still.json"
[[ $(field "$work/still.json" state) == CASE_STATE_VERIFIED ]] || {
  echo "a sign-off not proved was sent: $(cat "$work/still.json")" >&2; exit 1; }
# The city approver signs the version they checked, which is now one behind: refused
# before anything is signed or sent.
rc=0; "$casectl" --server "$server" --identity sun.li sign-off "$case_id" --expected-version "$version" \
  --inspection-id insp-1 --key "$work/keys/city.key" >/dev/null 2>"$work/stale.err" || rc=$?
[[ $rc == 4 ]] && grep -q "is at version $((version + 1)), not $version" "$work/stale.err" || {
  echo "sign-off --key for a past version: exit $rc, $(cat "$work/stale.err")" >&2; exit 1; }
"$casectl" --server "$server" --identity sun.li --json sign-off "$case_id" \
  --expected-version "$((version + 1))" --inspection-id insp-1 --key "$work/keys/city.key" \
  --verify-with "$good" >"$work/closed.json" 2>"$work/closed.err" || {
  echo "sign-off --key --verify-with: $(cat "$work/closed.json" "$work/closed.err")" >&2; exit 1; }
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["case"]["state"] == "CASE_STATE_CLOSED", d' "$work/closed.json"

# A kept checkpoint (--checkpoint-file) moves only along a consistency proof. A second
# server under the same key, with a history of its own, stands for a log that shows
# another history: its checkpoints verify under the key, and are refused against the first.
# The size of the latest signed checkpoint of the server at $1.
signed_size() {
  "$casectl" --server "$1" --identity zhou.hua --json proof checkpoint |
    "$py" -c 'import json,sys; print(json.load(sys.stdin)["tree_size"])'
}
# Waits (bounded) until the latest signed checkpoint of the server at $1 is past $2 and
# stays where it is for 1.5 s (a checkpoint is signed every second while the log grows).
settled_past() {
  local last=-1 now
  for _ in $(seq 1 40); do
    now=$(signed_size "$1")
    [[ $now -gt $2 && $now == "$last" ]] && return 0
    last=$now; sleep 1.5
  done
  echo "the signed checkpoint of $1 did not settle past $2 (at $now)" >&2; return 1
}
ctl proof checkpoint --key "$good" --out "$work/kept.note" >/dev/null
rc=0; ctl proof consistency --checkpoint-file "$work/none.note" --key "$good" >/dev/null \
  2>"$work/none.err" || rc=$?
[[ $rc == 2 ]] && grep -q "no checkpoint is kept in" "$work/none.err" || {
  echo "consistency from a missing kept checkpoint: exit $rc, $(cat "$work/none.err")" >&2; exit 1; }
rc=0; ctl proof consistency --checkpoint-file "$work/kept.note" --first 3 --key "$good" \
  >/dev/null 2>"$work/both.err" || rc=$?
[[ $rc == 2 ]] && grep -q "takes the place of --first" "$work/both.err" || {
  echo "--checkpoint-file with --first: exit $rc, $(cat "$work/both.err")" >&2; exit 1; }
kept_size=$("$py" -c 'import sys; print(open(sys.argv[1]).read().split("\n")[1])' "$work/kept.note")
"$load" --server "$server" --concurrency 2 --count 20 --read-percent 0 --no-sign-off \
  --json >"$work/load3.json"
settled_past "$server" "$kept_size"
ctl proof consistency --checkpoint-file "$work/kept.note" --key "$good" >"$work/kept.json"
"$py" - "$work/kept.json" "$work/kept.note" "$kept_size" <<'PY' || { echo "consistency from the kept checkpoint: $(cat "$work/kept.json")" >&2; exit 1; }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] is True and d["first_tree_size"] == int(sys.argv[3]), d
assert d["second_tree_size"] > d["first_tree_size"], d
# The newer checkpoint is kept in the file's place.
assert open(sys.argv[2]).read().split("\n")[1] == str(d["second_tree_size"]), d
PY
# A checkpoint of the log's own size signed with its key over another root: two
# histories of one size. One signed with another key: not a checkpoint of this log.
size_now=$(signed_size "$server")
"$py" "$(dirname "$0")/sign_note.py" "$work/data/log.key" "$size_now" "$(printf '%064d' 7)" \
  >"$work/twin.note"
"$py" "$(dirname "$0")/sign_note.py" "$work/other.key" "$size_now" "$(printf '%064d' 7)" \
  >"$work/stranger.note"
# `proof consistency` from a copy of the note $1, kept, against the server at $2: refused
# with exit $4 (5: the log is not what was kept; 4: the kept file could not be used)
# saying $3, the copy left as it was.
refused_from() {
  cp "$work/$1.note" "$work/$1-kept.note"
  local rc=0
  "$casectl" --server "$2" --identity zhou.hua --json proof consistency \
    --checkpoint-file "$work/$1-kept.note" --key "$good" >"$work/$1.json" || rc=$?
  [[ $rc == "$4" ]] && cmp -s "$work/$1.note" "$work/$1-kept.note" && grep -q "$3" "$work/$1.json" ||
    { echo "a kept checkpoint ($1) was not refused: exit $rc, $(cat "$work/$1.json")" >&2; exit 1; }
}
refused_from twin "$server" "two histories of one size" 5
refused_from stranger "$server" "not one signed by the verifier key" 4
mkdir "$work/fork"
cp "$work/data/log.key" "$work/fork/log.key"
"$caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/fork" \
  --principals "$principals" --port-file "$work/fork.port" --metrics-listen off \
  >"$work/fork.log" 2>&1 &
fork_pid=$!
for _ in $(seq 1 600); do [[ -s $work/fork.port ]] && break; sleep 0.1; done
[[ -s $work/fork.port ]] || { cat "$work/fork.log"; exit 1; }
fork=127.0.0.1:$(cat "$work/fork.port")
"$load" --server "$fork" --concurrency 2 --count 10 --read-percent 0 --no-sign-off \
  --json >"$work/fork-load.json"
settled_past "$fork" 0
"$casectl" --server "$fork" --identity zhou.hua --json proof checkpoint --key "$good" \
  --out "$work/fork.note" >/dev/null
cp "$work/kept.note" "$work/main.note"
# The other history, smaller: no consistency proof leads from it to the first log's.
refused_from fork "$server" "not an extension" 5
# An approver who kept it is refused before signing: nothing is signed or sent.
ctl list --filter 'state = VERIFIED' --page-size 1 >"$work/verified2.json"
case2=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["case_id"])' "$work/verified2.json")
version2=$(ctl get "$case2" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["version"])')
signer() { "$casectl" --server "$server" --identity approver.dongshan --json sign-off "$case2" \
  --expected-version "$version2" --inspection-id insp-1 --key "$work/keys/county.key" \
  --verify-with "$good" "$@"; }
rc=0; signer --checkpoint-file "$work/fork-kept.note" >"$work/forked.err" 2>&1 || rc=$?
[[ $rc == 5 ]] && grep -q "not signed: .*not an extension" "$work/forked.err" &&
  cmp -s "$work/fork.note" "$work/fork-kept.note" || {
  echo "sign-off against a kept checkpoint of another history: exit $rc, $(cat "$work/forked.err")" >&2; exit 1; }
[[ $(ctl get "$case2" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["version"])') == "$version2" ]] || {
  echo "a sign-off refused for its kept checkpoint was sent" >&2; exit 1; }
# The first log's larger checkpoint, kept, against the smaller other log: events lost.
refused_from main "$fork" "lost events" 5
# A watch keeps the checkpoints its stream carries the same way: against the first log its
# file starts and follows; against the other log, the first log's checkpoint kept ends the
# watch at the first checkpoint (exit 5), the file as it was.
# The watch runs until it has kept the latest signed checkpoint (bounded: 300 tries 0.2 s
# apart, each asking for the latest checkpoint; the server's stream threads run at nice 19,
# and a busy machine may give them little time), then stops.
"$casectl" --server "$server" --identity zhou.hua --json watch --key "$good" \
  --checkpoint-file "$work/watch.note" >"$work/watch.json" 2>"$work/watch.err" &
watch_pid=$!
kept_latest() {
  local want
  want=$(signed_size "$server") || return 1
  [[ -n $want ]] &&
    grep -qE '"kept":true.*"verified":true|"verified":true.*"kept":true' "$work/watch.json" &&
    [[ $(sed -n 2p "$work/watch.note" 2>/dev/null) == "$want" ]]
}
for _ in $(seq 1 300); do
  kept_latest && break
  kill -0 "$watch_pid" 2>/dev/null || break
  sleep 0.2
done
rc=0; kill -0 "$watch_pid" 2>/dev/null || rc=ended
kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; watch_pid=
[[ $rc == 0 ]] && kept_latest || {
  echo "watch --checkpoint-file: $rc, $(cat "$work/watch.err"), kept: $(cat "$work/watch.note")" >&2; exit 1; }
# Later, after more load, a watch resumed from there to the latest size (ending by --count)
# proves the log grew from the kept checkpoint and keeps the newer one.
kept1=$(sed -n 2p "$work/watch.note")
"$load" --server "$server" --concurrency 2 --count 10 --read-percent 0 --no-sign-off \
  --json >"$work/load4.json"
settled_past "$server" "$kept1"
kept2=$(signed_size "$server")
"$casectl" --server "$server" --identity zhou.hua --json watch --from "$kept1" \
  --count "$((kept2 - kept1))" --key "$good" --checkpoint-file "$work/watch.note" \
  >"$work/watch2.json" 2>"$work/watch2.err" || {
  echo "watch --checkpoint-file, resumed: $(cat "$work/watch2.err")" >&2; exit 1; }
[[ $(sed -n 2p "$work/watch.note") == "$kept2" ]] || {
  echo "the resumed watch kept $(sed -n 2p "$work/watch.note"), not $kept2" >&2; exit 1; }
# Checkpoints under another key end the watch at the first one.
rc=0; timeout 60 "$casectl" --server "$server" --identity zhou.hua watch --key "$bad" \
  >/dev/null 2>"$work/watch-bad.err" || rc=$?
[[ $rc == 5 ]] && grep -q "NOT VERIFIED.*does not verify under --key" "$work/watch-bad.err" || {
  echo "watch --key of another key: exit $rc, $(cat "$work/watch-bad.err")" >&2; exit 1; }
cp "$work/main.note" "$work/watch-main.note"
rc=0; timeout 60 "$casectl" --server "$fork" --identity zhou.hua --json watch --key "$good" \
  --checkpoint-file "$work/watch-main.note" >/dev/null 2>"$work/watch-fork.err" || rc=$?
[[ $rc == 5 ]] && grep -q "NOT VERIFIED.*lost events" "$work/watch-fork.err" &&
  cmp -s "$work/main.note" "$work/watch-main.note" || {
  echo "watch of another log against a kept checkpoint: exit $rc, $(cat "$work/watch-fork.err")" >&2; exit 1; }
kill "$fork_pid"; wait "$fork_pid" 2>/dev/null || true; fork_pid=
# Without --verify-with a kept checkpoint could not be checked: a usage error.
rc=0; "$casectl" --server "$server" --identity approver.dongshan sign-off "$case2" \
  --expected-version "$version2" --inspection-id insp-1 --key "$work/keys/county.key" \
  --checkpoint-file "$work/kept.note" >/dev/null 2>"$work/nocheck.err" || rc=$?
[[ $rc == 2 ]] && grep -q "checkpoint-file needs --key and --verify-with" "$work/nocheck.err" || {
  echo "sign-off --checkpoint-file without --verify-with: exit $rc, $(cat "$work/nocheck.err")" >&2; exit 1; }
# First use: the checkpoint proved under is kept; the next sign-off checks against it.
signer --checkpoint-file "$work/approver.note" >"$work/signed2.json" 2>"$work/signed2.err" || {
  echo "sign-off with a new kept checkpoint: $(cat "$work/signed2.json" "$work/signed2.err")" >&2; exit 1; }
grep -q "first use" "$work/signed2.err" && grep -q '^— ' "$work/approver.note" || {
  echo "the first sign-off kept no checkpoint: $(cat "$work/signed2.err")" >&2; exit 1; }
"$casectl" --server "$server" --identity sun.li --json sign-off "$case2" \
  --expected-version "$((version2 + 1))" --inspection-id insp-1 --key "$work/keys/city.key" \
  --verify-with "$good" --checkpoint-file "$work/approver.note" >"$work/closed2.json" \
  2>"$work/closed2.err" || {
  echo "sign-off against a kept checkpoint: $(cat "$work/closed2.json" "$work/closed2.err")" >&2; exit 1; }
grep -q "consistent .* only grew" "$work/closed2.err" || {
  echo "the second sign-off did not check its kept checkpoint: $(cat "$work/closed2.err")" >&2; exit 1; }

# An export that cannot be written is a failure, not "exported".
rc=0; ctl export --out "$work/no-such-dir/x.log" >/dev/null 2>&1 || rc=$?
[[ $rc == 4 ]] || { echo "export to an unwritable path: exit $rc, want 4" >&2; exit 1; }
# An export the server refuses (li.na is no auditor) leaves an earlier file of that name
# as it was, and nothing beside it; one that succeeds replaces it whole.
mkdir "$work/exports"
echo "an earlier export" >"$work/exports/ledger.export"
rc=0; "$casectl" --server "$server" --identity li.na export --out "$work/exports/ledger.export" \
  >/dev/null 2>&1 || rc=$?
[[ $rc != 0 && $(cat "$work/exports/ledger.export") == "an earlier export" ]] || {
  echo "a refused export (exit $rc) changed the file there" >&2; exit 1; }
[[ $(ls "$work/exports") == ledger.export ]] || { echo "export left: $(ls "$work/exports")" >&2; exit 1; }
ctl export --out "$work/exports/ledger.export" >/dev/null
ctl verify-export "$work/exports/ledger.export" --key "$good" >"$work/vexp.json" || {
  echo "the export that replaced the file does not verify" >&2; exit 1; }
# The four sign-offs above re-verified from the export alone, the leaf hash they name included.
[[ $(field "$work/vexp.json" sign_offs_checked) == 4 ]] || {
  echo "verify-export checked other than 4 sign-offs: $(cat "$work/vexp.json")" >&2; exit 1; }
"$py" "$(dirname "$0")/../tools/verify_export.py" export "$work/exports/ledger.export" --key "$good" \
  >"$work/pyexp.json" || { echo "tools/verify_export.py: $(cat "$work/pyexp.json")" >&2; exit 1; }
[[ $(field "$work/pyexp.json" sign_offs_checked) == 4 ]] || {
  echo "verify_export.py checked other than 4 sign-offs: $(cat "$work/pyexp.json")" >&2; exit 1; }
[[ $(ls "$work/exports") == ledger.export ]] || { echo "export left: $(ls "$work/exports")" >&2; exit 1; }
# --json with a file name that is not UTF-8: exported, and said so in valid JSON.
odd="$work/exports/"$'\xff'".export"
ctl --json export --out "$odd" >"$work/odd.json" ||
  { echo "an export to a non-UTF-8 name failed: $(cat "$work/odd.json")" >&2; exit 1; }
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["bytes"] > 0, d' "$work/odd.json" &&
  [[ -s "$odd" ]] || { echo "export --json, non-UTF-8 name: $(cat "$work/odd.json")" >&2; exit 1; }
# Usage errors: a sign-off with --key-id but no --signature, a negative seed count.
rc=0; "$casectl" --server "$server" --identity sun.li sign-off c-1 --expected-version 1 \
  --inspection-id i --key-id ed25519:0000000000000000 >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || { echo "sign-off without --signature: exit $rc, want 2" >&2; exit 1; }
rc=0; "$casectl" --server "$server" seed --cases -1 >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || { echo "seed --cases -1: exit $rc, want 2" >&2; exit 1; }
# A TLS client key that group or others may read is refused before anything is sent, and
# the call does not fall back to plaintext.
printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' >"$work/ca.pem"; cp "$work/ca.pem" "$work/client.pem"; cp "$work/ca.pem" "$work/client.key"
chmod 644 "$work/client.key"
rc=0; "$casectl" --server "$server" --timeout-ms 3000 --tls-ca "$work/ca.pem" \
  --tls-cert "$work/client.pem" --tls-key "$work/client.key" get c-1 >/dev/null 2>"$work/tls.err" || rc=$?
[[ $rc == 2 ]] && grep -q "readable by group or others; chmod 600" "$work/tls.err" || {
  echo "a world-readable --tls-key: exit $rc, $(cat "$work/tls.err")" >&2; exit 1; }
# seed acts as the sample identities only: --identity is refused, not ignored.
rc=0; "$casectl" --server "$server" --identity zhou.hua seed --cases 1 >/dev/null 2>"$work/seed.err" || rc=$?
[[ $rc == 2 ]] && grep -q "drop it" "$work/seed.err" || {
  echo "seed with --identity: exit $rc, $(cat "$work/seed.err")" >&2; exit 1; }
echo "casectl proofs: verified under the server key, refused under another or from another root, nothing claimed without one"
