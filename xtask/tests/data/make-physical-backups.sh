#!/bin/sh
# Makes physical backups the way a production team does, with the real
# tools and without drill: a PostgreSQL cluster archiving every WAL segment
# both to a folder (cp) and to a pgBackRest repository (archive-push);
# pg_basebackup plain (with backup_manifest) and tar.gz; a pgBackRest full
# backup; then more rows, a restore point and a timestamp between them.
#
#   make-physical-backups.sh OUT PORT [ROWS]
#
# (ROWS per step, default 1000; the benchmark uses more.)
# OUT gets: archive/ base-plain/ base-tar/ repo/ (stanza `prod`),
# target-time (rows 1..2N committed before it, 2N+1..3N after),
# and the cluster stopped in data/. Runs the server as `postgres` when root.
set -eu
out=$1
port=$2
n=${3:-1000}
bindir=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$out/archive" "$out/repo" "$out/log"
[ "$(id -u)" = 0 ] && chown -R postgres "$out"
as_pg "$bindir/initdb" -D "$out/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
cat > "$out/pgbackrest.conf" <<CONF
[global]
repo1-path=$out/repo
log-path=$out/log
lock-path=$out/log
log-level-console=warn
start-fast=y
repo1-retention-full=2
[prod]
pg1-path=$out/data
pg1-port=$port
pg1-socket-path=$out
pg1-user=postgres
CONF
chmod 644 "$out/pgbackrest.conf"
br="pgbackrest --config=$out/pgbackrest.conf --stanza=prod"
cat >> "$out/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$out'
archive_mode = on
archive_command = '(test -f $out/archive/%f || cp %p $out/archive/%f) && $br archive-push %p'
CONF
as_pg "$bindir/pg_ctl" -D "$out/data" -l "$out/log/server.log" -w start >/dev/null
sql() { as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$out" -p "$port" -U postgres -At "$@"; }
as_pg $br stanza-create
sql -c "CREATE DATABASE trading"
sql -d trading -c "CREATE TABLE trades (id int PRIMARY KEY, symbol text NOT NULL, at timestamptz NOT NULL DEFAULT now())"
sql -d trading -c "INSERT INTO trades (id, symbol) SELECT g, 'BTC' FROM generate_series(1, $n) g"
as_pg "$bindir/pg_basebackup" -h "$out" -p "$port" -U postgres -D "$out/base-plain" -F plain -X stream -c fast
as_pg "$bindir/pg_basebackup" -h "$out" -p "$port" -U postgres -D "$out/base-tar" -F tar -z -X stream -c fast
as_pg $br --type=full backup
sql -d trading -c "INSERT INTO trades (id, symbol) SELECT g, 'ETH' FROM generate_series($n + 1, 2 * $n) g"
sql -c "SELECT pg_create_restore_point('after-2000')" >/dev/null
sleep 1
sql -c "SELECT now()" > "$out/target-time"
sleep 1
sql -d trading -c "INSERT INTO trades (id, symbol) SELECT g, 'SOL' FROM generate_series(2 * $n + 1, 3 * $n) g"
sql -c "SELECT pg_switch_wal()" >/dev/null
# Wait until the segment holding the last rows is archived.
for _ in $(seq 1 60); do
  [ "$(sql -c "SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver")" = t ] && break
  sleep 0.5
done
as_pg "$bindir/pg_ctl" -D "$out/data" -m fast -w stop >/dev/null
