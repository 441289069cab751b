#!/usr/bin/env bash
# One case through its whole life with casectl alone, against a real caseworkd on
# loopback: listed, returned and amended, confirmed, assisted (visits, measures, funds, a
# replaced assignment), a failed and a passed inspection, sent back, inspected again,
# closed by two signed sign-offs, reopened by a follow-up review that found a relapse,
# assisted again; a talk and a notice on the case and on its county; then the reads an
# overseer makes (events, the case as of a position, the county report, the
# accountability report, an inspection draw) and the administrator's key revocation and
# backups (the older one deleted, --backups-kept 1). Each command's flags reach the server as meant: the state, the version and the
# recorded event are checked after each.
# Usage: casectl_lifecycle_test.sh CASEWORKD CASECTL PRINCIPALS_JSON
set -euo pipefail
caseworkd=$1 casectl=$2 principals=$3
py=/usr/bin/python3
work=$(mktemp -d /tmp/casework-casectl-life-XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$caseworkd" --listen 127.0.0.1:0 --insecure-plaintext --data-dir "$work/data" \
  --principals "$principals" --port-file "$work/port" --metrics-listen off \
  --backup-dir "$work/backups" --backups-kept 1 >"$work/caseworkd.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [[ -s $work/port ]] && break; sleep 0.1; done
[[ -s $work/port ]] || { cat "$work/caseworkd.log"; fail "caseworkd did not start"; }
server=127.0.0.1:$(cat "$work/port")

case_id=life-1
deadline=$(date -d '+120 days' +%F)
as() { local who=$1; shift; "$casectl" --server "$server" --identity "$who" --json "$@"; }
# The case's field $1 (a JSON path of dot-separated keys) as the lister reads it.
case_field() {
  as li.na get "$case_id" | "$py" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print("" if v is None else v)' "$1"
}
version() { case_field version; }
state() { case_field state; }
# Runs a case command as $1 at the current version; the response in $work/last.json.
step() {
  local who=$1 cmd=$2; shift 2
  local v; v=$(version)
  as "$who" "$cmd" "$case_id" --expected-version "$v" "$@" >"$work/last.json" 2>"$work/last.err" ||
    fail "$cmd as $who at version $v: $(cat "$work/last.json" "$work/last.err")"
}
# The body of the latest event of the response in $work/last.json, as JSON.
last_event() {
  "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d["events"][-1]["event"]))' \
    "$work/last.json"
}
expect_state() { [[ $(state) == "$1" ]] || fail "after $2: state $(state), want $1"; }
expect_event() {  # $1: a Python expression over e (the latest event), $2: what it shows
  last_event | "$py" -c "import json,sys; e=json.load(sys.stdin); assert $1, e" ||
    fail "$2: $(last_event)"
}

# --- listed, returned, amended, confirmed ---
as li.na create --case-id "$case_id" --org-id org-life-1 --org-name 东山村党支部 \
  --jurisdiction jiangcheng/dongshan/t01/org-life-1 --kind village --type poor \
  --categories 1 3 --findings "no collective income" --deadline "$deadline" >"$work/last.json"
expect_state CASE_STATE_LISTED create
expect_event 'e["organisation_listed"]["case_type"] == "CASE_TYPE_POOR" and len(e["organisation_listed"]["problem_categories"]) == 2' "create: type and categories"
step zhao.min review --return --comment "the findings name no figures"
expect_event 'e["listing_reviewed"].get("confirmed", False) is False and "figures" in e["listing_reviewed"]["comment"]' "review --return"
step li.na amend --type poor --categories 1 --findings "collective income 0 yuan in 2025" \
  --deadline "$deadline"
expect_event '"0 yuan" in e["listing_amended"]["findings"] and len(e["listing_amended"]["problem_categories"]) == 1' "amend"
step zhao.min review --comment "confirmed"
expect_event 'e["listing_reviewed"]["confirmed"] is True' "review"
expect_state CASE_STATE_LISTED "review (confirmed)"

# --- assisted: visits, measures, funds, a replaced assignment ---
step li.na assign --dept-id dept-finance --dept-name 市财政局 --dept-kind economic \
  --first-secretary wang.qiang --cadres chen.jie --plan "build a cooperative"
expect_state CASE_STATE_ASSISTED assign
expect_event 'e["assistance_assigned"]["assignment"]["paired_department"]["kind"] == "DEPARTMENT_KIND_ECONOMIC" and e["assistance_assigned"]["assignment"]["first_secretary"]["person_id"] == "wang.qiang"' "assign: department kind, first secretary"
step wang.qiang visit --visitors wang.qiang chen.jie --notes "met the village committee"
expect_event 'sorted(e["field_visit_recorded"]["visitors"]) == ["chen.jie", "wang.qiang"]' "visit: visitors"
step wang.qiang measure --description "cooperative registered" --category 1
expect_event 'e["measure_completed"]["problem_category"] == "PROBLEM_CATEGORY_LEADERSHIP"' "measure: category 1"
step wang.qiang funds --amount-fen 012345600 --source "city budget" --purpose "cooperative"
expect_event 'int(e["funds_provided"]["amount_fen"]) == 12345600 and e["funds_provided"]["source"] == "city budget"' "funds: amount in fen"
step li.na replace --dept-id dept-finance --dept-name 市财政局 --dept-kind economic \
  --first-secretary wang.qiang --cadres liu.yang --plan "build a cooperative" \
  --reason "chen.jie was transferred"
expect_event '[p["person_id"] for p in e["assignment_replaced"]["assignment"]["stationed_cadres"]] == ["liu.yang"] and "transferred" in e["assignment_replaced"]["reason"]' "replace"

# --- inspected: failed, passed, sent back, passed again ---
step chen.jing inspect --inspection-id insp-1 --fail --findings "income not yet steady" \
  --further-measures "a second product line"
expect_state CASE_STATE_ASSISTED "inspect --fail"
expect_event 'e["inspection_failed"]["inspection_id"] == "insp-1" and "second product" in e["inspection_failed"]["further_measures"]' "inspect --fail"
step chen.jing inspect --inspection-id insp-2 --findings "income steady for six months"
expect_state CASE_STATE_VERIFIED inspect
expect_event 'e["inspection_passed"]["inspection_id"] == "insp-2"' "inspect"
step approver.dongshan send-back --reason "the accounts were not shown"
expect_state CASE_STATE_ASSISTED send-back
expect_event '"accounts" in e["case_sent_back"]["reason"]' "send-back: reason"
step chen.jing inspect --inspection-id insp-3 --findings "accounts shown and audited"
expect_state CASE_STATE_VERIFIED "inspect again"

# --- closed by two signed sign-offs ---
as admin keygen --out "$work/county.key" >"$work/county.json"
as admin keygen --out "$work/city.key" >"$work/city.json"
pub() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$1"; }
as admin admin register-key approver.dongshan --public-key "$(pub "$work/county.json")" \
  --level county >/dev/null
as admin admin register-key sun.li --public-key "$(pub "$work/city.json")" --level city \
  >"$work/city-reg.json"
step approver.dongshan sign-off --inspection-id insp-3 --key "$work/county.key"
expect_state CASE_STATE_VERIFIED "the first sign-off"
step sun.li sign-off --inspection-id insp-3 --key "$work/city.key"
expect_state CASE_STATE_CLOSED "the second sign-off"

# --- reopened by a relapse, assisted again ---
step chen.jing follow-up --relapsed --findings "the cooperative stopped trading" --categories 1 \
  --deadline "$deadline"
expect_state CASE_STATE_REOPENED follow-up
expect_event 'e["relapse_found"]["problem_categories"] == ["PROBLEM_CATEGORY_LEADERSHIP"]' "follow-up: categories"
step li.na assign --dept-id dept-agri --dept-name 市农业农村局 --dept-kind economic \
  --first-secretary wang.qiang --cadres liu.yang --plan "restart trading"
expect_state CASE_STATE_ASSISTED "assign after the relapse"

# --- a talk and a notice, on the case and on its county ---
step zhou.hua talk --talked-with party.secretary --subject "the relapse" --notes "agreed steps"
expect_event '[p["person_id"] for p in e["admonishment_talk_recorded"]["talked_with"]] == ["party.secretary"]' "talk"
step zhou.hua notice --notice-id "江组通〔2026〕7号" --content "rectify within the term" \
  --deadline "$deadline"
expect_event 'e["rectification_notice_issued"]["notice_id"] == "江组通〔2026〕7号"' "notice"
as zhou.hua county-talk --county jiangcheng/dongshan --talked-with county.secretary \
  --subject "listing order" >/dev/null || fail "county-talk"
as zhou.hua county-notice --county jiangcheng/dongshan --notice-id "江组通〔2026〕8号" \
  --content "list the weakest first" >/dev/null || fail "county-notice"

# --- an overseer's reads ---
final=$(version)
as zhou.hua events "$case_id" >"$work/events.json"
"$py" - "$work/events.json" "$final" <<'PY' || fail "events: $(head -c 400 "$work/events.json")"
import json, sys
lines = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
versions = [int(l["event"]["version"]) for l in lines if "event" in l]
assert versions == list(range(1, int(sys.argv[2]) + 1)), versions
PY
# The case as of the position of its seventh event: version 7, still assisted.
position7=$("$py" -c '
import json, sys
for x in open(sys.argv[1]):
    l = json.loads(x)
    if "event" in l and int(l["event"]["version"]) == 7: print(l.get("position", 0))' "$work/events.json")
as zhou.hua as-of case "$case_id" --position "$((position7 + 1))" >"$work/asof.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert int(d["version"]) == 7 and d["state"] == "CASE_STATE_ASSISTED", d' \
  "$work/asof.json" || fail "as-of case: $(cat "$work/asof.json")"
as zhou.hua report --jurisdiction jiangcheng/dongshan --since 2026-01-01 >"$work/report.json"
"$py" - "$work/report.json" <<'PY' || fail "report: $(cat "$work/report.json")"
import json, sys
d = json.load(open(sys.argv[1]))
lines = d["lines"] if isinstance(d, dict) and "lines" in d else d
line = [l for l in lines if l["jurisdiction"] == "jiangcheng/dongshan"][0]
assert int(line.get("assisted", 0)) == 1, line
assert int(line.get("relapses_in_period", line.get("relapses", 0))) >= 1, line
PY
as zhou.hua accountability --county jiangcheng/dongshan --since 2026-01-01 >"$work/acc.json"
"$py" - "$work/acc.json" <<'PY' || fail "accountability: $(head -c 600 "$work/acc.json")"
import json, sys
text = open(sys.argv[1]).read()
for needle in ("江组通〔2026〕8号", "county.secretary", "party.secretary"):
    assert needle in text, needle
PY
as zhou.hua sample --size 1 --scope jiangcheng/dongshan >"$work/sample.json"
grep -q "$case_id" "$work/sample.json" || fail "sample: $(cat "$work/sample.json")"

# --- the administrator: a key revoked, a backup taken ---
key_id=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["key_id"])' "$work/city-reg.json")
as admin admin revoke-key sun.li "$key_id" --reason "rotated" >/dev/null || fail "revoke-key"
rc=0; as sun.li sign-off "$case_id" --expected-version "$(version)" --inspection-id insp-3 \
  --key "$work/city.key" >"$work/revoked.json" 2>&1 || rc=$?
[[ $rc == 1 ]] || fail "a sign-off with a revoked key: exit $rc, $(cat "$work/revoked.json")"
as admin admin backup >"$work/backup.json"
"$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert int(d["tree_size"]) > 0, d' \
  "$work/backup.json" || fail "backup: $(cat "$work/backup.json")"
# A second backup with --backups-kept 1: the first goes, with its checkpoint.
as admin admin backup >"$work/backup2.json"
kept=$(find "$work/backups" -maxdepth 1 -name 'checkpoint-*' | wc -l)
[[ $kept == 1 ]] || fail "--backups-kept 1 left $kept checkpoints: $(ls "$work/backups")"
echo "casectl: one case listed to reopened and assisted again ($final versions), its overseers' reads, a key revoked, a backup"
