#!/usr/bin/env bash
# Integration (issue 18): `sluice proxy --state` keeps its listeners across a crash of its
# serving process (src/proxy/keeper.c, docs/proxy.md "The keeper"). On loopback: an example
# service on 36391, the proxy's admin API on 36371, routes on 36301 and 36302.
#   - under 200 requests/s over 8 kept-alive connections, the serving process killed twice
#     (-9): at most the requests in flight fail (at most one per connection), another serving
#     process answers on the same listeners, with the routes of the state file
#   - a route deleted before a crash: its address refuses connections after the restart (the
#     keeper closed its copy of the listener)
#   - SIGTERM to the keeper stops both processes, status 0; a first start that fails (the
#     admin address taken) is not restarted: the keeper exits with its status
#   - the keeper killed: the serving process dies too (it does not hold the addresses)
# Usage: proxy-keeper.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
D=$(mktemp -d /tmp/sluice-it-keeper.XXXXXX)
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done; return 1; }
now_ms() { date +%s%3N; }
K= UP=
cleanup() {
	set +e
	[ -n "$K" ] && kill -9 $(pgrep -P "$K") "$K" 2>/dev/null
	[ -n "$UP" ] && kill "$UP" 2>/dev/null
	pkill -9 -f "$D" 2>/dev/null
	if [ "$fail" -ne 0 ]; then echo "--- proxy log"; tail -40 "$D/proxy.log"; fi
	rm -rf "$D"
}
trap cleanup EXIT

"$B/examples/metadata-v1" --port 36391 >"$D/up.log" 2>&1 &
UP=$!
cat >"$D/proxy.json" <<EOF
{"admin": "127.0.0.1:36371", "routes": []}
EOF
route() { # route NAME PORT
	curl -sf -o /dev/null -X PUT "http://127.0.0.1:36371/v1/routes/$1" -d "{\"listen\": \"127.0.0.1:$2\",
	  \"versions\": [{\"version\": \"v1\", \"weight\": 1, \"backends\": [\"127.0.0.1:36391\"]}]}"
}
answers() { curl -sf -m 1 -o /dev/null "http://127.0.0.1:$1/items/1"; }
serving() { pgrep -P "$K" | head -1; }
"$S" proxy --config "$D/proxy.json" --state "$D/routes.json" --workers 2 >"$D/proxy.log" 2>&1 &
K=$!
wait_until 10 curl -sf -o /dev/null http://127.0.0.1:36371/healthz
check "routes put" route a 36301
route b 36302
check "both routes answer" wait_until 5 answers 36301
answers 36302 || bad "route b does not answer"

# ---- crashes under load
first=$(serving)
"$S" load --url http://127.0.0.1:36301/items/1 --url http://127.0.0.1:36302/items/1 --rate 200 --conns 8 \
	--duration 8 >"$D/load.txt" 2>&1 &
L=$!
sleep 2
kill -9 "$(serving)"
t0=$(now_ms)
for _ in $(seq 500); do answers 36301 && break; sleep 0.005; done
ms=$(($(now_ms) - t0))
sleep 2
second=$(serving)
kill -9 "$second"
sleep 2
wait "$L"
cat "$D/load.txt"
failed=$(grep -o 'failed [0-9]*' "$D/load.txt" | grep -o '[0-9]*')
echo "# two kill -9 of the serving process under 200 requests/s: failed $failed, new connections served after $ms ms"
check "at most the requests in flight failed (failed $failed, at most 8 per kill)" test "$failed" -le 16
check "another serving process answers after each kill" \
	test -n "$(serving)" -a "$(serving)" != "$second" -a "$second" != "$first"
check "the keeper is the same process" kill -0 "$K"
check "the new process serves the saved routes" answers 36302

# ---- a deleted route's listener does not survive the restart
curl -sf -o /dev/null -X DELETE http://127.0.0.1:36371/v1/routes/b
sleep 0.2 # the state file is written within 50 ms
kill -9 "$(serving)"
check "after a restart, route a answers" wait_until 5 answers 36301
refused() { ! curl -s -m 1 -o /dev/null "http://127.0.0.1:36302/items/1"; }
check "the deleted route's address refuses connections" refused
check "its listener is not kept open by the keeper" \
	test "$(ss -Hltn 'sport = :36302' | wc -l)" = 0

# ---- a requested stop
kill -TERM "$K"
rc=0
wait "$K" || rc=$?
check "SIGTERM to the keeper: exit status $rc (0), no process left" \
	test "$rc" = 0 -a -z "$(pgrep -f "$D/routes.json")"
K=

# ---- a first start that fails is not restarted
"$B/examples/metadata-v1" --port 36371 >"$D/squat.log" 2>&1 & # the admin address taken
SQ=$!
wait_until 5 curl -sf -o /dev/null http://127.0.0.1:36371/items/1
rc=0
timeout 10 "$S" proxy --config "$D/proxy.json" --state "$D/routes.json" >"$D/bad.log" 2>&1 || rc=$?
kill "$SQ"
wait "$SQ" 2>/dev/null || true
check "the admin address taken: the keeper exits with the serving process's status ($rc), once" \
	test "$rc" != 0 -a "$rc" != 124 -a "$(grep -c 'cannot listen' "$D/bad.log")" = 1

# ---- the keeper killed: its serving process dies too and frees the addresses
"$S" proxy --config "$D/proxy.json" --state "$D/routes.json" >"$D/proxy.log" 2>&1 &
K=$!
wait_until 10 answers 36301
child=$(serving)
kill -9 "$K"
wait "$K" 2>/dev/null || true
K=
gone() { ! kill -0 "$child" 2>/dev/null; }
check "the keeper killed: the serving process dies too" wait_until 2 gone
"$S" proxy --config "$D/proxy.json" --state "$D/routes.json" >"$D/proxy2.log" 2>&1 &
K=$!
check "a new proxy takes the addresses" wait_until 10 answers 36301

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
