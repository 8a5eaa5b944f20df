#!/usr/bin/env bash
# pg-cluster: a throwaway PostgreSQL 15 cluster for tests and benchmarks.
#
#   pg-cluster.sh run [--port P] -- CMD ARGS...   start a cluster, run CMD, always stop it
#   pg-cluster.sh start DIR [PORT]                initdb into DIR/data and start it
#   pg-cluster.sh stop DIR                        stop it (no-op when it is not running)
#   pg-cluster.sh restart DIR                     pg_ctl restart (fast: sessions are cut)
#
# The cluster listens on 127.0.0.1:PORT only (default 35432, which no other test uses) and on
# a unix socket in DIR; authentication is "trust" for the superuser "sluice", and a database
# "sluice" exists. Under `run`, CMD sees:
#   SLUICE_PG_URL      postgresql://sluice@127.0.0.1:PORT/sluice
#   SLUICE_PG_DIR      the cluster's directory (for `restart DIR` and `stop DIR`)
#   SLUICE_PG_FIXTURE  this script's path
# and the cluster is stopped and DIR removed however CMD ends (a trap on EXIT, INT and TERM).
# PostgreSQL refuses to run as root: as root, the cluster runs as the system user sluice-pg
# (created here, with useradd -r, when missing). Every wait is bounded (pg_ctl -t, timeout).
#
# SLUICE_PG_DURABLE=1 keeps fsync on (benchmarks); tests run without it.
# Exit status: CMD's; 77 (meson's "skipped") when the PostgreSQL 15 server binaries are not
# installed (scripts/deps.sh test installs them); 1 when the cluster could not start.
# Two runs on the same port take turns (a lock file /tmp/sluice-pg-PORT.lock, which neither the
# server nor CMD inherits), and a cluster this script left running on the port (a run killed by
# -9) is stopped first.
set -euo pipefail

PGBIN=${SLUICE_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=sluice-pg
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

die() { echo "pg-cluster: $*" >&2; exit 1; }

have_server() { [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/postgres" ]; }

# Runs a PostgreSQL binary as the cluster's owner (a prefix, so that timeout can wrap it).
OWNER=()
[ "$(id -u)" -eq 0 ] && OWNER=(runuser -u "$PG_USER" --)
as_owner() { "${OWNER[@]}" "$@"; }

ensure_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	getent passwd "$PG_USER" >/dev/null && return 0
	useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$PG_USER" 2>/dev/null ||
		getent passwd "$PG_USER" >/dev/null || die "could not create the user $PG_USER"
}

# Stops clusters an earlier run of this script left on the port (their directories are ours:
# /tmp/sluice-pg.*), so that a run killed by -9 does not block the next one.
stop_stale() {
	local port=$1 pid
	for pidfile in /tmp/sluice-pg.*/data/postmaster.pid; do
		[ -f "$pidfile" ] || continue
		[ "$(sed -n 4p "$pidfile" 2>/dev/null)" = "$port" ] || continue
		pid=$(head -1 "$pidfile")
		echo "pg-cluster: stopping a stale cluster (pid $pid) in ${pidfile%/data/*}" >&2
		as_owner "$PGBIN/pg_ctl" -D "${pidfile%/postmaster.pid}" -m immediate -t 20 -w stop \
			>/dev/null 2>&1 || kill -9 "$pid" 2>/dev/null || true
		rm -rf "${pidfile%/data/*}"
	done
}

start() {
	local dir=$1 port=${2:-35432}
	have_server || die "the PostgreSQL 15 server is not installed ($PGBIN)"
	ensure_user
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$dir"
	chmod 700 "$dir"
	timeout 120 "${OWNER[@]}" "$PGBIN/initdb" -D "$dir/data" -U sluice --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed (log above)"; }
	cat >>"$dir/data/postgresql.conf" <<-EOF
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$dir'
		max_connections = 50
		shared_buffers = 32MB
		log_min_messages = warning
	EOF
	# tests need no durability; a benchmark does (SLUICE_PG_DURABLE=1): then commits wait for
	# fsync, as SQLite's synchronous=FULL does
	[ "${SLUICE_PG_DURABLE:-0}" = 1 ] ||
		printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' \
			>>"$dir/data/postgresql.conf"
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -t 30 -w start >/dev/null 9>&- ||
		{ cat "$dir/server.log" >&2; die "the server did not start on 127.0.0.1:$port (log above)"; }
	timeout 30 "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port" -U sluice -d postgres \
		-c 'CREATE DATABASE sluice' >/dev/null || die "could not create the database"
	echo "$port" >"$dir/port"
}

stop() {
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] || return 0
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -t 30 -w stop >/dev/null 2>&1 ||
		as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -t 30 -w stop >/dev/null 2>&1 || true
}

restart() {
	local dir=$1
	as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -t 30 -w restart \
		>/dev/null 9>&- || { cat "$dir/server.log" >&2; die "restart failed (log above)"; }
}

run() {
	local port=35432
	while [ $# -gt 0 ]; do
		case $1 in
		--port) port=$2; shift 2 ;;
		--) shift; break ;;
		*) die "run: unexpected '$1' (usage: run [--port P] -- CMD...)" ;;
		esac
	done
	[ $# -gt 0 ] || die "run: no command"
	if ! have_server; then
		echo "pg-cluster: SKIP: the PostgreSQL 15 server is not installed in $PGBIN" \
			"(scripts/deps.sh test installs the postgresql package)" >&2
		exit 77
	fi
	exec 9>"/tmp/sluice-pg-$port.lock"
	flock -w 600 9 || die "another run holds 127.0.0.1:$port for more than 10 minutes"
	stop_stale "$port"
	local dir
	dir=$(mktemp -d /tmp/sluice-pg.XXXXXX)
	# shellcheck disable=SC2064
	trap "stop '$dir'; rm -rf '$dir'" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	start "$dir" "$port"
	export SLUICE_PG_URL="postgresql://sluice@127.0.0.1:$port/sluice"
	export SLUICE_PG_DIR=$dir SLUICE_PG_FIXTURE=$self
	local rc=0
	"$@" 9>&- || rc=$?
	exit "$rc"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
run) run "$@" ;;
start) [ $# -ge 1 ] || die "usage: start DIR [PORT]"; start "$@" ;;
stop) [ $# -eq 1 ] || die "usage: stop DIR"; stop "$1" ;;
restart) [ $# -eq 1 ] || die "usage: restart DIR"; restart "$1" ;;
*) sed -n '2,9p' "$self" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
