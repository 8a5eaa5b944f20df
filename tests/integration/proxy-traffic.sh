#!/bin/bash
# `sluice proxy` under real traffic, with nginx as the upstreams (run as our own process):
# weights within statistical tolerance, stickiness, weight changes and backend removal under
# continuous load with 0 failed requests, draining states, passive ejection, and the proxy
# serving on while nobody talks to its admin API. Bounded: about 20 s.
# usage: proxy-traffic.sh SLUICE_BINARY
set -euo pipefail
sluice=$1
for t in nginx wrk python3 curl; do
	command -v $t >/dev/null || { [ -x /usr/sbin/$t ] && PATH=$PATH:/usr/sbin; } || true
done
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
for t in nginx wrk python3 curl; do
	command -v $t >/dev/null || { echo "SKIP: $t is not installed (scripts/deps.sh test)"; exit 77; }
done

tmp=$(mktemp -d /tmp/sluice-proxy-traffic.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- proxy log"; tail -30 "$tmp/proxy.log" || true; exit 1; }
ok() { echo "ok:   $*"; }

read -r A1 A2 A3 B1 < <(python3 -c '
import socket
ss=[socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
# Fixed ports below the kernel's ephemeral range (32768+): a port picked with bind(0) and
# released could be handed to the proxy's own port-0 listeners before the admin binds it.
ADMIN=30071 DEAD=30079

mkdir -p "$tmp/ng"
cat > "$tmp/ng/nginx.conf" <<NG
worker_processes 1;
daemon off;
pid $tmp/ng/nginx.pid;
error_log $tmp/ng/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  server { listen 127.0.0.1:$A1; location / { return 200 "v1 a1\n"; } }
  server { listen 127.0.0.1:$A2; location / { return 200 "v1 a2\n"; } }
  server { listen 127.0.0.1:$A3; location / { return 200 "v1 a3\n"; } }
  server { listen 127.0.0.1:$B1; location / { return 200 "v2 b1\n"; } }
}
NG
nginx -c "$tmp/ng/nginx.conf" -p "$tmp/ng" 2>"$tmp/ng/stderr" &
pids+=($!)

cat > "$tmp/proxy.json" <<JS
{"admin": "127.0.0.1:$ADMIN", "workers": 2,
 "routes": [{"name": "web.production.local", "listen": "127.0.0.1:0",
             "versions": [{"version": "v1", "weight": 80, "backends": ["127.0.0.1:$A1", "127.0.0.1:$A2"]},
                          {"version": "v2", "weight": 20, "backends": ["127.0.0.1:$B1"]}]},
            {"name": "sticky.production.local", "listen": "127.0.0.1:0", "sticky": {"cookie": "uid"},
             "versions": [{"version": "v1", "weight": 70, "backends": ["127.0.0.1:$A1"]},
                          {"version": "v2", "weight": 30, "backends": ["127.0.0.1:$B1"]}]}]}
JS
"$sluice" proxy --config "$tmp/proxy.json" 2>"$tmp/proxy.log" &
pids+=($!)
admin=http://127.0.0.1:$ADMIN
for i in $(seq 100); do
	curl -sf "$admin/healthz" >/dev/null && curl -sf "http://127.0.0.1:$A1/" >/dev/null && break
	sleep 0.05
done
curl -sf "$admin/healthz" >/dev/null || fail "the proxy did not start"
# the routes listen on port 0: the kernel picks free ports, GET tells which
listen_port() {
	curl -sf "$admin/v1/routes/$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['listen'].rsplit(':',1)[1])"
}
P1=$(listen_port web.production.local)
P2=$(listen_port sticky.production.local)

metric() { # route version field -> number
	curl -sf "$admin/v1/metrics" | python3 -c "import json,sys; m=json.load(sys.stdin); print(m['routes']['$1']['versions']['$2']$3)"
}

# 1. weights: 80/20 within 5 standard deviations
wrk -t2 -c16 -d2s "http://127.0.0.1:$P1/" >"$tmp/wrk1.txt"
n1=$(metric web.production.local v1 "['requests']")
n2=$(metric web.production.local v2 "['requests']")
python3 - "$n1" "$n2" <<'PY' || fail "weights 80/20 not respected: v1=$n1 v2=$n2"
import math, sys
a, b = int(sys.argv[1]), int(sys.argv[2]); n = a + b
sd = math.sqrt(n * 0.2 * 0.8)
sys.exit(0 if n > 1000 and abs(b - 0.2 * n) < 5 * sd else 1)
PY
ok "weights 80/20: v1=$n1 v2=$n2"

# 2. stickiness: every user sees one version on every request; the split follows the weights
python3 - "$P2" <<'PY' || fail "stickiness"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
seen, v2 = {}, 0
for u in range(300):
    for k in range(3):
        c.request("GET", "/", headers={"Cookie": "a=b; uid=user-%d" % u})
        body = c.getresponse().read().decode().split()[0]
        if seen.setdefault(u, body) != body:
            print("user %d moved from %s to %s" % (u, seen[u], body)); sys.exit(1)
    v2 += seen[u] == "v2"
print("sticky users on v2: %d of 300 (weight 30%%)" % v2)
sys.exit(0 if 50 <= v2 <= 130 else 1)
PY
ok "stickiness by cookie"

# 3. weight changes and backend removal under continuous load: no failed request
put() { curl -sf -XPUT "$admin/v1/routes/web.production.local" -d "$1" >/dev/null || fail "PUT $1"; }
route() { # weights v1 v2, then the v1 backends
	local b="" sep=""
	for p in "${@:3}"; do b="$b$sep\"127.0.0.1:$p\""; sep=","; done
	echo "{\"listen\":\"127.0.0.1:$P1\",\"versions\":[{\"version\":\"v1\",\"weight\":$1,\"backends\":[$b]},{\"version\":\"v2\",\"weight\":$2,\"backends\":[\"127.0.0.1:$B1\"]}]}"
}
e0=$(metric web.production.local v1 "['upstream_errors']")
wrk -t2 -c20 -d4s "http://127.0.0.1:$P1/" >"$tmp/wrk2.txt" &
wrkpid=$!
sleep 0.5; put "$(route 50 50 "$A1" "$A2")"
sleep 0.5; put "$(route 10 90 "$A1" "$A2")"
sleep 0.5; put "$(route 90 10 "$A1" "$A3")"   # A2 leaves, A3 joins
state=$(curl -sf "$admin/v1/routes/web.production.local")
echo "$state" | grep -q "\"addr\":\"127.0.0.1:$A2\",\"state\":\"drain" || fail "A2 is not draining/drained: $state"
sleep 0.5; put "$(route 100 0 "$A3")"
sleep 0.5; put "$(route 80 20 "$A1" "$A3")"
wait $wrkpid
cat "$tmp/wrk2.txt" | grep -E "Requests/sec|requests in"
grep -qE "Non-2xx|Socket errors" "$tmp/wrk2.txt" && fail "failed requests during PUTs: $(cat "$tmp/wrk2.txt")"
e1=$(metric web.production.local v1 "['upstream_errors']")
[ "$e0" = "$e1" ] || fail "upstream errors during PUTs: $e0 -> $e1"
x5=$(metric web.production.local v1 "['responses']['5xx']")
[ "$x5" = 0 ] || fail "5xx responses: $x5"
ok "5 PUTs (weights, backend removed and added) under load: 0 failed requests"
sleep 0.3
state=$(curl -sf "$admin/v1/routes/web.production.local")
echo "$state" | python3 -c "
import json, sys
s = json.load(sys.stdin)['backends_state']
assert all(b['in_flight'] == 0 for b in s), s
assert all(b['state'] in ('active', 'drained') for b in s), s
" || fail "states after the load: $state"
ok "removed backends end drained, nothing in flight"

# 4. passive ejection: a dead backend next to a live one: no failed request, then ejected
put "$(route 100 0 "$DEAD" "$A1")"
for i in $(seq 20); do
	curl -sf "http://127.0.0.1:$P1/" >/dev/null || fail "request $i failed with a dead backend in the version"
done
curl -sf "$admin/v1/routes/web.production.local" | grep -q "\"addr\":\"127.0.0.1:$DEAD\",\"state\":\"ejected\"" ||
	fail "the dead backend is not ejected: $(curl -sf "$admin/v1/routes/web.production.local")"
ok "connect failures retried on the other backend (20/20 ok), dead backend ejected"

# 5. nobody drives the proxy: it keeps its last configuration and serves
sleep 1
for i in $(seq 10); do curl -sf "http://127.0.0.1:$P2/" >/dev/null || fail "idle proxy stopped serving"; done
ok "serves on without its control plane"

# 6. DELETE closes the listener; SIGTERM ends the process
curl -sf -XDELETE "$admin/v1/routes/sticky.production.local" >/dev/null || fail "DELETE"
sleep 0.2
curl -s -m 1 "http://127.0.0.1:$P2/" >/dev/null && fail "the deleted route still answers"
kill -TERM "${pids[1]}"
for i in $(seq 50); do kill -0 "${pids[1]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${pids[1]}" 2>/dev/null && fail "the proxy did not exit on SIGTERM"
ok "DELETE closes the route; SIGTERM stops the proxy"

# 7. --state FILE: a restarted proxy serves the routes it was given before, without any PUT
echo "{\"admin\": \"127.0.0.1:$ADMIN\", \"workers\": 1, \"routes\": []}" >"$tmp/empty.json"
"$sluice" proxy --config "$tmp/empty.json" --state "$tmp/state.json" 2>>"$tmp/proxy.log" &
spid=$!
pids+=($spid)
for i in $(seq 100); do curl -sf "$admin/healthz" >/dev/null && break; sleep 0.05; done
put "$(route 1 0 "$A1")"
kill -TERM $spid; wait $spid || true
"$sluice" proxy --config "$tmp/empty.json" --state "$tmp/state.json" 2>>"$tmp/proxy.log" &
pids+=($!)
for i in $(seq 100); do curl -sf "$admin/healthz" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$P1/" | grep -q "v1 a1" || fail "the route saved with --state was not restored"
ok "--state restores the routes after a restart"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
# under -Db_sanitize the proxy reports memory errors and UB on stderr without failing requests
grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$tmp/proxy.log" && fail "sanitizer report in the proxy log"
echo "all proxy traffic checks passed"
