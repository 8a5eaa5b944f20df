#!/bin/bash
# bench/proxy/run.sh: requests/s and latency of `sluice proxy` next to nginx and haproxy, in
# the same run, on loopback, with the same number of workers and the same upstream (nginx, one
# worker, keep-alive), for several kinds of traffic. A benchmark, not a test: it fails only
# when a tool is missing or a proxy does not answer; errors seen by wrk are printed.
#
# usage: bench/proxy/run.sh [SLUICE_BINARY [BASE_BINARY]]   (default build/src/sluice)
#   WORKERS=2 ROUNDS=3 DURATION=3 CASES="small 32k" bench/proxy/run.sh build/src/sluice
# BASE_BINARY, when given, is a second sluice (e.g. a build of main) measured as "base" in the
# same rounds, so that a change is judged against the same machine noise.
#
# Cases (CASES, default all), each wrk -t$THREADS on loopback:
#   small     GET, 17-byte answer, 50 keep-alive connections
#   32k       GET, 32 KiB answer (a static file upstream), 50 connections
#   256k      GET, 256 KiB answer, 50 connections
#   post4k    POST with a 4 KiB body, 17-byte answer, 50 connections
#   post64k   POST with a 64 KiB body, 17-byte answer, 50 connections
#   chunked   GET, a chunked 16 KiB answer (the upstream's sub_filter drops its length), 50 conns
#   conns1000 GET, 17-byte answer, 1,000 keep-alive connections
#   newconn   GET, 17-byte answer, "Connection: close": a new connection per request, 50 conns
# Every round runs every case on every proxy, the order of the proxies alternating between
# rounds; the tables are medians of the rounds. Bounded: ROUNDS <= 20, DURATION <= 60 s; the
# whole run takes about ROUNDS x cases x proxies x (DURATION + 1) seconds.
set -euo pipefail
sluice=${1:-build/src/sluice}
base=${2:-}
WORKERS=${WORKERS:-2}
DURATION=${DURATION:-3}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
CASES=${CASES:-small 32k 256k post4k post64k chunked conns1000 newconn}
PATH=$PATH:/usr/sbin
for t in wrk nginx haproxy python3 curl; do
	command -v $t >/dev/null || { echo "$t is not installed: scripts/deps.sh test" >&2; exit 2; }
done
[ -x "$sluice" ] || { echo "no sluice binary at $sluice" >&2; exit 2; }
[ -z "$base" ] || [ -x "$base" ] || { echo "no sluice binary at $base" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || { echo "ROUNDS must be 1..20" >&2; exit 2; }
[ "$DURATION" -ge 1 ] && [ "$DURATION" -le 60 ] || { echo "DURATION must be 1..60" >&2; exit 2; }
for c in $CASES; do
	case $c in small|32k|256k|post4k|post64k|chunked|conns1000|newconn) ;;
	*) echo "unknown case $c" >&2; exit 2 ;;
	esac
done
ulimit -n 20000 2>/dev/null || true

tmp=$(mktemp -d /tmp/sluice-bench-proxy.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp" # nginx workers started by root run as nobody and read the upstream's files

read -r UP PS PN PH PB ADMIN ADMINB < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')

# the upstream: one nginx worker; fixed answers, static files, a chunked answer
mkdir -p "$tmp/up/www" "$tmp/ngx"
python3 - "$tmp/up/www" <<'PY'
import sys, os
d = sys.argv[1]
line = b"the quick brown fox jumps over the lazy dog 0123456789\n"  # 56 bytes
for name, size in (("32k", 32768), ("256k", 262144), ("chunked", 16384)):
    data = (line * (size // len(line) + 1))[:size]
    open(os.path.join(d, name), "wb").write(data)
PY
cat > "$tmp/up/nginx.conf" <<NG
worker_processes 1;
daemon off;
pid $tmp/up/nginx.pid;
error_log $tmp/up/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  sendfile on;
  open_file_cache max=16;
  default_type text/plain;
  client_body_buffer_size 128k;
  server {
    listen 127.0.0.1:$UP backlog=4096;
    root $tmp/up/www;
    location = /small { return 200 "hello, world 017\n"; }
    location = /post { return 200 "hello, world 017\n"; }
    location = /chunked { sub_filter_types *; sub_filter "zzz" "yyy"; }
  }
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
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_max_body_size 100m;
  upstream up { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$PN reuseport backlog=4096;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NG
nginx -c "$tmp/ngx/nginx.conf" -p "$tmp/ngx" &
pids+=($!)
NPID=$!

# haproxy: same number of threads, connection reuse to the upstream
cat > "$tmp/haproxy.cfg" <<HA
global
  nbthread $WORKERS
  maxconn 8000
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
HPID=$!

start_sluice() { # binary listen-port admin-port name
	cat > "$tmp/$4.json" <<JS
{"admin": "127.0.0.1:$3", "workers": $WORKERS,
 "routes": [{"name": "bench", "listen": "127.0.0.1:$2",
             "versions": [{"version": "v1", "weight": 1, "backends": ["127.0.0.1:$UP"]}]}]}
JS
	"$1" proxy --config "$tmp/$4.json" 2>"$tmp/$4.log" &
	pids+=($!)
}
start_sluice "$sluice" "$PS" "$ADMIN" sluice
SPID=$!
proxies="sluice nginx haproxy"
ports="$UP $PS $PN $PH"
if [ -n "$base" ]; then
	start_sluice "$base" "$PB" "$ADMINB" base
	BPID=$!
	proxies="sluice base nginx haproxy"
	ports="$ports $PB"
fi
pid_of() {
	case $1 in sluice) echo "$SPID" ;; base) echo "$BPID" ;; nginx) echo "$NPID" ;; haproxy) echo "$HPID" ;; esac
}
# CPU time (utime + stime, clock ticks) of a process and its children (nginx's workers)
ticks() {
	local t=0 p
	for p in $1 $(pgrep -P "$1" || true); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo $t
}
port_of() {
	case $1 in sluice) echo "$PS" ;; base) echo "$PB" ;; nginx) echo "$PN" ;; haproxy) echo "$PH" ;; esac
}

for p in $ports; do
	for i in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$p/small" && break
		sleep 0.05
	done
	curl -sf -o /dev/null "http://127.0.0.1:$p/small" || { echo "port $p does not answer" >&2; exit 1; }
done
# every proxy must give the same bytes for every case
for p in $ports; do
	cmp -s <(curl -sf "http://127.0.0.1:$p/chunked") "$tmp/up/www/chunked" ||
		{ echo "port $p: wrong chunked answer" >&2; exit 1; }
	[ "$(curl -sfi "http://127.0.0.1:$UP/chunked" | tr -d '\r' | grep -ci '^transfer-encoding: chunked')" = 1 ] ||
		{ echo "the upstream's /chunked is not chunked" >&2; exit 1; }
done

for n in 4096 65536; do
	cat > "$tmp/post$n.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("a", $n)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
done

# wrk's latency lines are like "50%  312.00us" or "99%    1.20ms": print microseconds
us() {
	awk -v q="$1" '$1 == q { v = $2; if (v ~ /us$/) { sub(/us/, "", v); print v }
		else if (v ~ /ms$/) { sub(/ms/, "", v); print v * 1000 }
		else if (v ~ /s$/) { sub(/s/, "", v); print v * 1000000 } }'
}
run() { # case proxy round
	local port args=() out="$tmp/$1.$2.$3.txt"
	port=$(port_of "$2")
	case $1 in
	small) args=(-c"$CONNS" "http://127.0.0.1:$port/small") ;;
	32k) args=(-c"$CONNS" "http://127.0.0.1:$port/32k") ;;
	256k) args=(-c"$CONNS" "http://127.0.0.1:$port/256k") ;;
	post4k) args=(-c"$CONNS" -s "$tmp/post4096.lua" "http://127.0.0.1:$port/post") ;;
	post64k) args=(-c"$CONNS" -s "$tmp/post65536.lua" "http://127.0.0.1:$port/post") ;;
	chunked) args=(-c"$CONNS" "http://127.0.0.1:$port/chunked") ;;
	conns1000) args=(-c1000 "http://127.0.0.1:$port/small") ;;
	newconn) args=(-c"$CONNS" -H "Connection: close" "http://127.0.0.1:$port/small") ;;
	esac
	local t0 t1
	t0=$(ticks "$(pid_of "$2")")
	wrk -t"$THREADS" -d"${DURATION}s" --latency "${args[@]}" >"$out"
	t1=$(ticks "$(pid_of "$2")")
	if grep -qE "Non-2xx|Socket errors" "$out"; then
		echo "$1 $2 round $3: errors: $(grep -E "Non-2xx|Socket errors" "$out" | tr '\n' ' ')" >&2
	fi
	local rps p50 p99 n cpu
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	p50=$(us 50% <"$out")
	p99=$(us 99% <"$out")
	n=$(awk '/requests in/ { print $1 }' "$out")
	# the proxy's CPU time per request in microseconds: less sensitive to the machine's other
	# load than requests/s (which also measures how much of the 2 cores the proxy was given)
	cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.1f", t * 1e6 / hz / (n > 0 ? n : 1) }')
	echo "$1 $2 $3 $rps $p50 $p99 $cpu" >>"$tmp/results"
	sleep 0.5 # let closed connections settle between runs
}

echo "workers=$WORKERS connections=$CONNS wrk threads=$THREADS duration=${DURATION}s rounds=$ROUNDS" \
	"cores=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"
echo "sluice=$sluice${base:+ base=$base}"
for r in $(seq "$ROUNDS"); do
	# alternate the order between rounds so that no proxy always runs on a warmer machine
	order=$proxies
	[ $((r % 2)) = 1 ] || order=$(echo "$proxies" | tr ' ' '\n' | tac | tr '\n' ' ')
	for c in $CASES; do
		for p in $order; do
			run "$c" "$p" "$r"
		done
	done
done
echo "load at the end=$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp/results" "$CASES" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    c, n, r, rps, p50, p99, cpu = line.split()
    rows.setdefault(c, {}).setdefault(n, []).append((float(rps), float(p50), float(p99), float(cpu)))
cases = sys.argv[2].split()
names = [n for n in ("sluice", "base", "nginx", "haproxy") if n in rows[cases[0]]]
summary = []
for c in cases:
    med = {n: tuple(statistics.median(x[i] for x in v) for i in range(4)) for n, v in rows[c].items()}
    ng = med["nginx"]
    print("\n== %s" % c)
    print("%-8s %12s %10s %10s %10s %10s %10s" % ("proxy", "requests/s", "p50 us", "p99 us", "cpu us/req",
                                                 "rps/nginx", "p99/nginx"))
    for n in names:
        r = med[n]
        print("%-8s %12.0f %10.0f %10.0f %10.1f %10.2f %10.2f" % (n, r[0], r[1], r[2], r[3], r[0] / ng[0],
                                                                 r[2] / ng[2]))
    print("per round (requests/s / p99 us / cpu us per request):")
    for n in names:
        print("  %-8s %s" % (n, "  ".join("%.0f/%.0f/%.1f" % (x[0], x[2], x[3]) for x in rows[c][n])))
    summary.append((c, med))
print("\n== ratios to nginx (medians of %d rounds): requests/s, p99, cpu per request" % len(rows[cases[0]]["nginx"]))
head = "%-10s" % "case"
for n in names:
    if n != "nginx":
        head += " %10s %10s %10s" % (n[:6] + " rps", n[:6] + " p99", n[:6] + " cpu")
if "base" in names:
    head += " %9s %9s %9s" % ("sl/base r", "sl/base p", "sl/base c")
print(head)
for c, med in summary:
    ng = med["nginx"]
    line = "%-10s" % c
    for n in names:
        if n != "nginx":
            line += " %10.2f %10.2f %10.2f" % (med[n][0] / ng[0], med[n][2] / ng[2], med[n][3] / ng[3])
    if "base" in names:
        sl, b = med["sluice"], med["base"]
        line += " %9.2f %9.2f %9.2f" % (sl[0] / b[0], sl[2] / b[2], sl[3] / b[3])
    print(line)
PY
