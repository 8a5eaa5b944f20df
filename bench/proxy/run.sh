#!/bin/bash
# bench/proxy/run.sh: requests/s and latency of `sluice proxy` next to nginx and haproxy, in
# the same run, on loopback, with the same number of workers and the same upstream (nginx, one
# worker, answering a small static body over keep-alive). A benchmark, not a test.
#
# usage: bench/proxy/run.sh [SLUICE_BINARY] (default build/src/sluice)
#   WORKERS=1 DURATION=10 CONNS=50 THREADS=1 ROUNDS=1 bench/proxy/run.sh build-proxy/src/sluice
# Prints requests/s, p50 and p99 for each proxy and the ratios to nginx.
set -euo pipefail
sluice=${1:-build/src/sluice}
WORKERS=${WORKERS:-1}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-1}
PATH=$PATH:/usr/sbin
for t in wrk nginx haproxy python3; do
	command -v $t >/dev/null || { echo "$t is not installed: scripts/deps.sh test" >&2; exit 2; }
done
[ -x "$sluice" ] || { echo "no sluice binary at $sluice" >&2; exit 2; }

tmp=$(mktemp -d /tmp/sluice-bench-proxy.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

read -r UP PS PN PH ADMIN < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')

# the upstream: one nginx worker with a fixed 13-byte answer
mkdir -p "$tmp/up" "$tmp/ngx"
cat > "$tmp/up/nginx.conf" <<NG
worker_processes 1;
daemon off;
pid $tmp/up/nginx.pid;
error_log $tmp/up/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$UP; location / { return 200 "hello, world\n"; } }
}
NG
nginx -c "$tmp/up/nginx.conf" -p "$tmp/up" &
pids+=($!)

# nginx as a reverse proxy: upstream keep-alive, HTTP/1.1 to the upstream
cat > "$tmp/ngx/nginx.conf" <<NG
worker_processes $WORKERS;
daemon off;
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  upstream up { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$PN reuseport;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NG
nginx -c "$tmp/ngx/nginx.conf" -p "$tmp/ngx" &
pids+=($!)

# haproxy: same number of threads, connection reuse to the upstream
cat > "$tmp/haproxy.cfg" <<HA
global
  nbthread $WORKERS
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$PH
  default_backend be
backend be
  server up 127.0.0.1:$UP
HA
haproxy -f "$tmp/haproxy.cfg" -db >/dev/null 2>&1 &
pids+=($!)

cat > "$tmp/sluice.json" <<JS
{"admin": "127.0.0.1:$ADMIN", "workers": $WORKERS,
 "routes": [{"name": "bench", "listen": "127.0.0.1:$PS",
             "versions": [{"version": "v1", "weight": 1, "backends": ["127.0.0.1:$UP"]}]}]}
JS
"$sluice" proxy --config "$tmp/sluice.json" 2>"$tmp/sluice.log" &
pids+=($!)

for p in $UP $PS $PN $PH; do
	for i in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$p/" && break
		sleep 0.05
	done
	curl -sf -o /dev/null "http://127.0.0.1:$p/" || { echo "port $p does not answer" >&2; exit 1; }
done

# wrk's latency lines are like "50%  312.00us" or "99%    1.20ms": print microseconds
us() {
	awk -v q="$1" '$1 == q { v = $2; if (v ~ /us$/) { sub(/us/, "", v); print v }
		else if (v ~ /ms$/) { sub(/ms/, "", v); print v * 1000 }
		else if (v ~ /s$/) { sub(/s/, "", v); print v * 1000000 } }'
}
run() { # name port round
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/" >"$tmp/$1.$3.txt"
	if grep -qE "Non-2xx|Socket errors" "$tmp/$1.$3.txt"; then
		echo "$1: errors:" >&2
		grep -E "Non-2xx|Socket errors" "$tmp/$1.$3.txt" >&2
	fi
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/$1.$3.txt")
	p50=$(us 50% <"$tmp/$1.$3.txt")
	p99=$(us 99% <"$tmp/$1.$3.txt")
	echo "$1 $rps $p50 $p99" >>"$tmp/results"
}

echo "workers=$WORKERS connections=$CONNS wrk threads=$THREADS duration=${DURATION}s rounds=$ROUNDS cores=$(nproc)"
for r in $(seq "$ROUNDS"); do
	# alternate the order between rounds so that no proxy always runs on a warmer machine
	if [ $((r % 2)) = 1 ]; then order="nginx haproxy sluice"; else order="sluice haproxy nginx"; fi
	for name in $order; do
		case $name in
		sluice) run sluice "$PS" "$r" ;;
		nginx) run nginx "$PN" "$r" ;;
		haproxy) run haproxy "$PH" "$r" ;;
		esac
	done
done
python3 - "$tmp/results" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    n, rps, p50, p99 = line.split()
    rows.setdefault(n, []).append((float(rps), float(p50), float(p99)))
med = {n: tuple(statistics.median(x[i] for x in v) for i in range(3)) for n, v in rows.items()}
ng = med["nginx"]
print("%-8s %12s %10s %10s %10s %10s" % ("proxy", "requests/s", "p50 us", "p99 us", "rps/nginx", "p99/nginx"))
for n in ("sluice", "nginx", "haproxy"):
    r = med[n]
    print("%-8s %12.0f %10.0f %10.0f %10.2f %10.2f" % (n, r[0], r[1], r[2], r[0] / ng[0], r[2] / ng[2]))
print("medians of %d rounds; per round (requests/s, p99 us):" % len(rows["nginx"]))
for n in ("sluice", "nginx", "haproxy"):
    print("  %-8s %s" % (n, "  ".join("%.0f/%.0f" % (x[0], x[2]) for x in rows[n])))
PY
