#!/usr/bin/env bash
# The peer baseline: the same append workload against PostgreSQL 15 (Debian) in the
# Marten event-store layout, driven by pgbench, durable (fsync on, synchronous_commit on).
#
# Layout (Marten): mt_streams(id, version, ...) and mt_events(seq_id bigserial, stream_id,
# version, data jsonb, type, timestamp, ...) with UNIQUE (stream_id, version). One
# transaction per append, as Marten's optimistic append does: the stream's version moves
# from the expected one to the next (an UPDATE ... WHERE version = expected; a stream is
# created at its first append) and the event is inserted with that version. Each client
# appends 8 events to a stream before it starts the next, about a casework case's life
# in casework-load's mix, so most appends find their stream in place, as commands on a
# case do. Event bodies are ~400 bytes of JSON, like a casework event.
#
# Usage: [TRANSPORT=tcp|uds] bench/peers/postgres.sh [clients=32] [seconds=10]
# TRANSPORT: pgbench connects over loopback TCP (default) or PostgreSQL's Unix socket.
# Prints pgbench's summary and a last line "postgres_appends_per_second N".
set -euo pipefail
clients=${1:-32}
seconds=${2:-10}
case ${TRANSPORT:-tcp} in tcp | uds) ;; *) echo "TRANSPORT is tcp or uds" >&2; exit 2 ;; esac

if ! command -v /usr/lib/postgresql/15/bin/initdb >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-contrib >/dev/null
fi
bin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/casework-pg-XXXXXX)
chown postgres "$work"
port=$((20000 + RANDOM % 10000))
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
  as_pg "$bin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

as_pg "$bin/initdb" -D "$work/data" -A trust -E UTF8 >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
fsync = on
synchronous_commit = on
wal_sync_method = fdatasync
full_page_writes = on
max_connections = 200
shared_buffers = 256MB
CONF
as_pg "$bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w start >/dev/null

host=127.0.0.1
[[ ${TRANSPORT:-tcp} == uds ]] && host=$work  # the socket directory
psql=(as_pg psql -h "$host" -p "$port" -q -v ON_ERROR_STOP=1 postgres)
"${psql[@]}" <<'SQL'
CREATE TABLE mt_streams (
  id uuid PRIMARY KEY, type varchar, version bigint NOT NULL,
  timestamp timestamptz NOT NULL DEFAULT now(), snapshot jsonb, snapshot_version integer,
  created timestamptz NOT NULL DEFAULT now(), tenant_id varchar DEFAULT '*DEFAULT*',
  is_archived bool DEFAULT false);
CREATE TABLE mt_events (
  seq_id bigserial PRIMARY KEY, id uuid NOT NULL,
  stream_id uuid REFERENCES mt_streams ON DELETE CASCADE,
  version bigint NOT NULL, data jsonb NOT NULL, type varchar(500) NOT NULL,
  timestamp timestamptz NOT NULL DEFAULT now(), tenant_id varchar DEFAULT '*DEFAULT*',
  mt_dotnet_type varchar, is_archived bool DEFAULT false,
  CONSTRAINT pk_mt_events_stream_and_version UNIQUE (stream_id, version));
SQL

# One append: client c's n-th append goes to its stream n / 8 at version n % 8 + 1.
# pgbench keeps each client's variables from one transaction to the next (-D n=-1).
cat >"$work/append.sql" <<'SQL'
\set n :n + 1
\set s :n / 8
\set v :n % 8 + 1
BEGIN;
INSERT INTO mt_streams (id, type, version)
  SELECT md5(:s::text || '/' || :client_id::text)::uuid, 'case', 0 WHERE :v = 1;
WITH bumped AS (
  UPDATE mt_streams SET version = :v, timestamp = now()
  WHERE id = md5(:s::text || '/' || :client_id::text)::uuid AND version = :v - 1
  RETURNING id, version)
INSERT INTO mt_events (id, stream_id, version, data, type)
  SELECT gen_random_uuid(), id, version,
    '{"actor":"wang.qiang","request_id":"0b6f2c1e-5d9a-4f7e-8a3b-1c2d3e4f5a6b","rules_version":"rules/2026.1","field_visit_recorded":{"visitors":["wang.qiang"],"visit_time":"2026-11-24T10:00:00Z","notes":"入村走访 field visit: met the branch committee, checked the accounts, agreed the next measures"}}'::jsonb,
    'field_visit_recorded'
  FROM bumped;
END;
SQL
chown postgres "$work/append.sql"
out=$(as_pg pgbench -h "$host" -p "$port" -n -M prepared -c "$clients" -j 2 -T "$seconds" \
  -D n=-1 -f "$work/append.sql" postgres)
echo "$out"
# What was appended: every transaction an event, streams of up to 8 (a failed version
# check would insert no event and show here).
"${psql[@]}" -t -A -F ' ' -c "SELECT 'appended: events', count(*), 'streams',
  (SELECT count(*) FROM mt_streams), 'highest version', max(version) FROM mt_events"
tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
echo "postgres_appends_per_second ${tps%.*}"
