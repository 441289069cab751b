#!/usr/bin/env bash
# casectl as an operator meets it, against a real caseworkd on loopback: exit statuses
# (usage 2, unreachable 3, not verified 5), the request id to retry with when the outcome
# is unknown, dates read and shown in the local time zone, paging with --page-token, a
# proof at an older size checked through a consistency proof, and a watch that resumes
# across a server restart with no gap and no duplicate.
# Usage: casectl_cli_test.sh CASEWORKD CASEWORK_LOAD CASECTL PRINCIPALS_JSON
set -euo pipefail
caseworkd=$1 load=$2 casectl=$3 principals=$4
py=/usr/bin/python3
work=$(mktemp -d /tmp/casework-casectl-cli-XXXXXX)
pid= watch_pid=
cleanup() {
  [[ -n $watch_pid ]] && { kill "$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; }
  [[ -n $pid ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The sample principals, and an administrator of one county (for the registry import).
"$py" - "$principals" "$work/principals.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc["principals"].append({"id": "admin.xihe", "roles": ["admin"], "jurisdiction": "jiangcheng/xihe"})
json.dump(doc, open(sys.argv[2], "w"), ensure_ascii=False)
PY
principals=$work/principals.json

start_server() {  # $1: listen address
  rm -f "$work/port"
  "$caseworkd" --listen "$1" --insecure-plaintext --data-dir "$work/data" \
    --principals "$principals" --port-file "$work/port" --metrics-listen off \
    >>"$work/caseworkd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do [[ -s $work/port ]] && break; sleep 0.1; done
  [[ -s $work/port ]] || { cat "$work/caseworkd.log"; fail "caseworkd did not start"; }
}
start_server 127.0.0.1:0
port=$(cat "$work/port")
server=127.0.0.1:$port
ctl() { "$casectl" --server "$server" "$@"; }

# --- exit statuses of usage errors: 2, whatever CLI11 would say; --help 0 ---
rc=0; ctl get >/dev/null 2>&1 || rc=$?; [[ $rc == 2 ]] || fail "missing argument: exit $rc, want 2"
rc=0; ctl no-such-command >/dev/null 2>&1 || rc=$?; [[ $rc == 2 ]] || fail "unknown command: exit $rc"
rc=0; ctl list --page-size x >/dev/null 2>&1 || rc=$?; [[ $rc == 2 ]] || fail "bad value: exit $rc"
ctl --help >/dev/null || fail "--help did not exit 0"
# What casectl can tell by itself is a usage error before any call, with a message.
usage() {  # $1: a word the message must hold; the rest: the command
  local want=$1 rc=0; shift
  ctl "$@" >/dev/null 2>"$work/usage.err" || rc=$?
  [[ $rc == 2 ]] && grep -q -- "$want" "$work/usage.err" || fail "$*: exit $rc, $(cat "$work/usage.err")"
}
usage "above 0" funds c-1 --expected-version 1 --amount-fen 0
usage "0 or more" review c-1 --expected-version -1
usage "requires --further-measures" inspect c-1 --expected-version 1 --inspection-id i --findings f --fail
usage "requires --fail" inspect c-1 --expected-version 1 --inspection-id i --findings f --further-measures m
usage "requires --relapsed" follow-up c-1 --expected-version 1 --findings f --categories 1
# A TLS option that cannot be used is a usage error, not "unreachable".
rc=0; ctl --tls-ca "$work/missing-ca.pem" get c-1 >/dev/null 2>"$work/tls.err" || rc=$?
[[ $rc == 2 ]] && grep -q "TLS" "$work/tls.err" || fail "unusable --tls-ca: exit $rc, $(cat "$work/tls.err")"

# --- unknown outcome: the request id to retry with is named ---
closed=127.0.0.1:1
rc=0; "$casectl" --server "$closed" --identity zhao.min --timeout-ms 2000 review c-1 \
  --expected-version 1 --request-id retry-me-1 >/dev/null 2>"$work/unreach.err" || rc=$?
[[ $rc == 3 ]] || fail "unreachable server: exit $rc, want 3"
grep -q -- "--request-id retry-me-1" "$work/unreach.err" || fail "retry id not named: $(cat "$work/unreach.err")"
rc=0; "$casectl" --server "$closed" --identity zhao.min --timeout-ms 2000 --json review c-1 \
  --expected-version 1 >"$work/unreach.json" 2>/dev/null || rc=$?
[[ $rc == 3 ]] || fail "unreachable server (json): exit $rc"
"$py" - "$work/unreach.json" <<'PY'
import json, re, sys
e = json.load(open(sys.argv[1]))["error"]
assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", e["request_id"]), e
PY
# A refusal is an answer: no retry advice, exit 1.
rc=0; ctl --identity li.na get no-such-case >/dev/null 2>"$work/nf.err" || rc=$?
[[ $rc == 1 ]] && grep -q CASE_NOT_FOUND "$work/nf.err" && ! grep -q -- "--request-id" "$work/nf.err" ||
  fail "a refusal: exit $rc, $(cat "$work/nf.err")"

# --- dates: a bare date is a day of the local time zone; a deadline is its end ---
TZ=Asia/Shanghai ctl --identity li.na --json create --case-id cli-1 --org-id org-cli-1 \
  --org-name 东山村党支部 --jurisdiction jiangcheng/dongshan/t01/org-cli-1 --type weak \
  --categories 1,3 --findings "书记空岗" --deadline 2030-06-30 >"$work/create.json"
"$py" - "$work/create.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["case"]
# 2030-06-30 23:59:59 in Asia/Shanghai (UTC+8).
assert c["deadline"] == "2030-06-30T15:59:59Z", c["deadline"]
PY
TZ=Asia/Shanghai ctl --identity li.na get cli-1 >"$work/get.txt"
grep -q "整改期限 *2030-06-30 23:59" "$work/get.txt" || fail "deadline shown: $(grep 期限 "$work/get.txt")"
rc=0; ctl --identity li.na create --case-id cli-2 --org-id org-cli-2 --org-name x \
  --jurisdiction jiangcheng/dongshan/t01/org-cli-2 --type weak --categories 1 --findings f \
  --deadline 2030-02-30 >/dev/null 2>"$work/date.err" || rc=$?
[[ $rc == 2 ]] && grep -q "YYYY-MM-DD" "$work/date.err" || fail "bad date: exit $rc, $(cat "$work/date.err")"

# --- registry import: a refusal names the line of the user's file, not of the request
# (the rows are regrouped by county before they are sent) ---
cat >"$work/registry.csv" <<'CSV'
organisation_id,display_name,jurisdiction,kind,grade,stars
org-x1,西河村党支部,jiangcheng/xihe/t01/org-x1,village,2,1
org-d1,东山村党支部,jiangcheng/dongshan/t01/org-d1,village,3,0
CSV
rc=0; ctl --identity admin.xihe registry import "$work/registry.csv" >/dev/null 2>"$work/reg.err" || rc=$?
[[ $rc == 1 ]] && grep -q "JURISDICTION_NOT_COVERED" "$work/reg.err" &&
  grep -q "line 3:" "$work/reg.err" && grep -q "第 3 行" "$work/reg.err" ||
  fail "registry import outside the jurisdiction: exit $rc, $(cat "$work/reg.err")"

# --- registry import: a bad file is refused before anything is sent, in English and in
# Chinese, each whole (a bilingual column name holds " / ") ---
printf 'organisation_id,display_name,jurisdiction,kind,grade / 分类定级,stars\n' >"$work/bad.csv"
rc=0; ctl --identity admin registry import "$work/bad.csv" >/dev/null 2>"$work/bad.err" || rc=$?
[[ $rc == 2 ]] && grep -q "line 1, column grade / 分类定级: unknown column" "$work/bad.err" &&
  grep -q "第 1 行“grade / 分类定级”列：未知列" "$work/bad.err" ||
  fail "registry import of a bad file: exit $rc, $(cat "$work/bad.err")"

# --- registry import --json: valid JSON whatever the request id holds ---
ctl --identity admin --json registry import "$work/registry.csv" --request-id 'q"1\x' >"$work/reg.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["request_id"] == "q\"1\\x" and d["imported"] == 2, d' "$work/reg.json" ||
  fail "registry import --json: $(cat "$work/reg.json")"
# The same file and request id again: nothing recorded, and said so (the counts shown are
# the first import's).
ctl --identity admin registry import "$work/registry.csv" --request-id 'q"1\x' >"$work/reg-again.txt"
grep -q "Imported before with this request id: 2 of 2 counties" "$work/reg-again.txt" &&
  grep -q "已用同一请求标识导入过" "$work/reg-again.txt" ||
  fail "registry import replayed: $(cat "$work/reg-again.txt")"
ctl --identity admin --json registry import "$work/registry.csv" --request-id 'q"1\x' >"$work/reg-again.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["replayed_counties"] == ["jiangcheng/dongshan", "jiangcheng/xihe"], d' "$work/reg-again.json" ||
  fail "registry import replayed --json: $(cat "$work/reg-again.json")"

# The same file under a new id records nothing (every row unchanged); that import retried
# is answered from its record, and said so, though no county was recorded by it.
ctl --identity admin registry import "$work/registry.csv" --request-id same-1 >/dev/null
ctl --identity admin registry import "$work/registry.csv" --request-id same-1 >"$work/same-again.txt"
grep -q "Imported before with this request id: 1 of 1 requests were answered" "$work/same-again.txt" &&
  grep -q "个请求按当时的导入作答" "$work/same-again.txt" ||
  fail "an all-unchanged import retried: $(cat "$work/same-again.txt")"
ctl --identity admin --json registry import "$work/registry.csv" --request-id same-1 >"$work/same-again.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["replayed_requests"] == 1 and d["unchanged"] == 2, d' "$work/same-again.json" ||
  fail "an all-unchanged import retried --json: $(cat "$work/same-again.json")"

# A county too large for one request is split over two. An import cut short after the
# first request, run again with the same id: the first request is answered from that
# import, the second records the rest now, so the county counts as recorded (no note).
# The whole file again: both are answered from before, and the county is named.
"$py" - "$work" <<'PY'
import sys
work = sys.argv[1]
line = "org-s{0:05d},南山村党支部{0:05d},jiangcheng/nanshan/t01/org-s{0:05d},village,2,1"
first = (192 * 1024) // (len(line.format(0).encode()) + 1)  # rows of the first request
header = "organisation_id,display_name,jurisdiction,kind,grade,stars\n"
rows = [line.format(i) for i in range(first + 300)]
open(work + "/county-part.csv", "w", encoding="utf-8").write(header + "\n".join(rows[:first]) + "\n")
open(work + "/county-whole.csv", "w", encoding="utf-8").write(header + "\n".join(rows) + "\n")
PY
ctl --identity admin --json registry import "$work/county-part.csv" --request-id split-1 >/dev/null
ctl --identity admin registry import "$work/county-whole.csv" --request-id split-1 >"$work/split.txt"
grep -Eq "^Requests 请求数 +2$" "$work/split.txt" && ! grep -q "Imported before" "$work/split.txt" ||
  fail "an interrupted import run again: $(cat "$work/split.txt")"

ctl --identity admin registry import "$work/county-whole.csv" --request-id split-1 >"$work/split-again.txt"
grep -q "Imported before with this request id: 1 of 1 counties" "$work/split-again.txt" ||
  fail "a split county imported again: $(cat "$work/split-again.txt")"

# --- paging: --json says where the next page starts, --page-token goes on from it ---
"$load" --server "$server" --concurrency 2 --count 40 --read-percent 0 --no-sign-off \
  --json >"$work/load.json"
ctl --identity li.na --json list --page-size 3 >"$work/page1.json"
token=$("$py" -c 'import json,sys; l=[json.loads(x) for x in open(sys.argv[1])]; assert len(l)==4, l; print(l[3]["next_page_token"])' "$work/page1.json")
ctl --identity li.na --json list --page-size 3 --page-token "$token" >"$work/page2.json"
"$py" - "$work/page1.json" "$work/page2.json" <<'PY'
import json, sys
first = [json.loads(x) for x in open(sys.argv[1])][:3]
second = [json.loads(x) for x in open(sys.argv[2])]
ids1 = [c["case_id"] for c in first]
ids2 = [c["case_id"] for c in second if "case_id" in c]
assert len(ids2) == 3 and not set(ids1) & set(ids2) and max(ids1) < min(ids2), (ids1, ids2)
PY

# --- flags: every flag as one answer (in pages only when one answer cannot hold them) ---
ctl --identity zhou.hua --json flags --at 2099-01-01 >"$work/flags.json"
"$py" - "$work/flags.json" <<'PY' || fail "flags: $(head -c 300 "$work/flags.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["flags"]) > 0 and r.get("next_page_token", "") == "", list(r)
assert int(r["through_position"]) > 0, r["through_position"]
PY
ctl --identity zhou.hua flags --at 2099-01-01 >"$work/flags.txt"
grep -q "flags 条预警" "$work/flags.txt" || fail "flags table: $(head -3 "$work/flags.txt")"

# --- the ledger as of a point, with its cases: as many as its counts, as they stood ---
ctl --identity zhou.hua --json as-of ledger --cases --position 30 >"$work/asof.json"
"$py" - "$work/asof.json" <<'PY' || fail "as-of ledger --cases: $(head -c 300 "$work/asof.json")"
import json, sys
lines = [json.loads(x) for x in open(sys.argv[1])]
counts, cases = lines[0], lines[1:]
root = [r for r in counts["counts"] if r["jurisdiction"] == "jiangcheng"][0]
total = sum(int(root.get(k, 0)) for k in ("listed", "assisted", "verified", "closed", "reopened"))
ids = [c["case_id"] for c in cases]
assert len(cases) == total > 0 and ids == sorted(ids), (total, ids)
assert all(int(c["last_position"]) < 30 for c in cases), cases
PY
ctl --identity zhou.hua as-of ledger --cases --position 30 >"$work/asof.txt"
grep -q "cases 个案件" "$work/asof.txt" || fail "as-of ledger --cases table: $(tail -3 "$work/asof.txt")"
# One point in time or the other: both given is a usage error, not one silently ignored.
rc=0; ctl --identity zhou.hua as-of ledger --position 30 --at 2026-01-01 >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "as-of with --position and --at: exit $rc, want 2"

# --- watch --json --count: no resume point past the events it printed ---
ctl --identity zhou.hua --json watch --count 3 >"$work/watch3.json"
"$py" - "$work/watch3.json" <<'PY' || fail "watch --count: $(cat "$work/watch3.json")"
import json, sys
records = [json.loads(x) for x in open(sys.argv[1])]
positions = [int(r["position"]) for r in records if "event" in r]
assert positions == [0, 1, 2], positions
scanned = [int(r["scanned_through"]) for r in records if "scanned_through" in r]
assert all(s <= positions[-1] + 1 for s in scanned), (scanned, positions)
PY

# --- proofs: a malformed key is a usage error; an older size is checked through a
# consistency proof to the latest signed checkpoint ---
sleep 1.5  # a checkpoint is signed every second while the log grows
vkey=$("$py" "$(dirname "$0")/verifier_key.py" "$work/data/log.key")
rc=0; ctl --identity zhou.hua proof checkpoint --key not-a-key >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "malformed --key: exit $rc, want 2"
ctl --identity zhou.hua --json proof inclusion --position 5 --size 20 --key "$vkey" >"$work/inc.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["verified_under_checkpoint"] is True and "consistency" in d["verified_via"], d' "$work/inc.json"
# verify-export names the checkpoint it verified against: the signed root an auditor
# compares with one kept from elsewhere.
ctl --identity zhou.hua export --out "$work/whole.export" >/dev/null
ctl --json verify-export "$work/whole.export" --key "$vkey" >"$work/vexp.json"
ctl --identity zhou.hua --json proof checkpoint >"$work/cp.json"
"$py" - "$work/vexp.json" "$work/cp.json" <<'PY' || fail "verify-export: $(cat "$work/vexp.json")"
import json, sys
v, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert v["ok"] is True and v["origin"], v
if v["tree_size"] == c["tree_size"]:
    assert v["root_hash"] == c["root_hash"], (v, c)
PY
# verify of a range says it is one: the positions outside it were not checked.
ctl --identity zhou.hua verify --from 5 --to 20 >"$work/range.txt"
grep -q "positions 5 to 19 only" "$work/range.txt" || fail "verify of a range: $(cat "$work/range.txt")"
ctl --identity zhou.hua verify --deep --from 5 --to 20 >"$work/deep-range.txt"
grep -q "positions 5 to 19 only" "$work/deep-range.txt" ||
  fail "verify --deep of a range: $(cat "$work/deep-range.txt")"
ctl --identity zhou.hua verify >"$work/whole.txt"
grep -q "the log up to its latest signed checkpoint, positions 0 to" "$work/whole.txt" ||
  fail "verify of the whole log: $(cat "$work/whole.txt")"
# verify-export of a part that does not start at 0 says its sign-offs were not checked.
ctl --identity zhou.hua export --from 5 --out "$work/part.export" >/dev/null
ctl verify-export "$work/part.export" --key "$vkey" >"$work/part.txt"
grep -q "sign-off signatures not checked" "$work/part.txt" || fail "verify-export of a part: $(cat "$work/part.txt")"
# verify-export of a file that is not an export: not verified (5), not a usage error.
head -c 300 /dev/urandom >"$work/garbage.export"
rc=0; ctl verify-export "$work/garbage.export" --key "$vkey" >/dev/null 2>&1 || rc=$?
[[ $rc == 5 ]] || fail "verify-export of garbage: exit $rc, want 5"

# --- watch: resumes across a restart of the server, no gap, no duplicate ---
ctl --identity zhou.hua --json watch >"$work/watch.json" 2>"$work/watch.err" &
watch_pid=$!
before=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tree_size"])' \
  <(ctl --identity zhou.hua --json proof checkpoint))
for _ in $(seq 1 100); do
  [[ $(grep -c '"event"' "$work/watch.json" || true) -ge $before ]] && break; sleep 0.1
done
kill -TERM "$pid"; wait "$pid" || true; pid=
start_server "$server"
"$load" --server "$server" --concurrency 2 --count 30 --read-percent 0 --no-sign-off \
  --json >"$work/load2.json"
sleep 1.5
total=$(ctl --identity zhou.hua --json verify | "$py" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["total"])')
for _ in $(seq 1 150); do
  [[ $(grep -c '"event"' "$work/watch.json" || true) -ge $total ]] && break; sleep 0.1
done
kill -TERM "$watch_pid"; wait "$watch_pid" 2>/dev/null || true; watch_pid=
"$py" - "$work/watch.json" "$total" <<'PY'
import json, sys
records = [json.loads(x) for x in open(sys.argv[1])]
# Every event line carries its position, 0 included (casectl prints zero values).
positions = [int(r["position"]) for r in records if "event" in r]
total = int(sys.argv[2])
assert positions == list(range(total)), (len(positions), total, positions[:5], positions[-5:])
PY
echo "casectl: usage 2, unreachable 3 with the retry id, local dates, paging, proofs at older sizes, a watch resumed across a restart ($total events)"
