#!/bin/bash
# bench/routes/run.sh: `sluice proxy` with thousands of routes. Loads N routes through the
# admin API (each its own service: host svcI.bench on one shared listener, or MODE=own: a
# listener per route), reports the memory per route, then runs wrk on one route, alternating
# quiet rounds with rounds in which the other routes are replaced (a backend swapped) at RATE
# per second, and prints wrk's failures and latency for both, and how long a replacement takes
# to answer (PUT) and to be applied (the first request through the proxy that reaches the new
# backend). A benchmark, not a test: it fails only when a tool is missing or the proxy does not
# answer.
#
# usage: bench/routes/run.sh [SLUICE_BINARY]        (default build/src/sluice)
#   N=3000 MODE=shared WORKERS=2 ROUNDS=3 DURATION=5 RATE=50 STATE=1 bench/routes/run.sh
# STATE=1 runs the proxy with --state FILE, as the server does (every PUT rewrites the file).
# Bounded: N <= 16384, ROUNDS <= 10, DURATION <= 60, RATE <= 500.
set -euo pipefail
sluice=${1:-build/src/sluice}
export N=${N:-3000} MODE=${MODE:-shared} WORKERS=${WORKERS:-2} ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-5} RATE=${RATE:-50} STATE=${STATE:-1} CONNS=${CONNS:-50}
PATH=$PATH:/usr/sbin
for t in wrk nginx python3; do
	command -v $t >/dev/null || { echo "$t is not installed: scripts/deps.sh test" >&2; exit 2; }
done
[ -x "$sluice" ] || { echo "no sluice binary at $sluice" >&2; exit 2; }
[ "$N" -ge 2 ] && [ "$N" -le 16384 ] || { echo "N must be 2..16384" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 10 ] || { echo "ROUNDS must be 1..10" >&2; exit 2; }
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 60 ] || { echo "DURATION must be 1..60" >&2; exit 2; }
[ "$RATE" -ge 1 ] && [ "$RATE" -le 500 ] || { echo "RATE must be 1..500" >&2; exit 2; }
case $MODE in shared|own) ;; *) echo "MODE must be shared or own" >&2; exit 2 ;; esac
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d /tmp/sluice-bench-routes.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

read -r UPA UPB < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')

# two upstreams, one nginx worker: "a" and "b" tell which backend answered
cat > "$tmp/nginx.conf" <<NG
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$UPA backlog=4096; location / { return 200 "a\n"; } }
  server { listen 127.0.0.1:$UPB backlog=4096; location / { return 200 "b\n"; } }
}
NG
nginx -c "$tmp/nginx.conf" -p "$tmp" &
pids+=($!)
for _ in $(seq 50); do
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $UPA), 0.2)" 2>/dev/null && break
	sleep 0.1
done
python3 "$(dirname "$0")/routes.py" "$sluice" "$tmp" "$UPA" "$UPB"
