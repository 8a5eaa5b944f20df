#!/bin/bash
# Integration test of the example services (examples/): real processes on 127.0.0.1, ephemeral
# ports. Usage: examples.sh BUILD_DIR   (binaries in BUILD_DIR/examples/)
# Checks responses and X-Version, keep-alive (HTTP/1.1 and 1.0), the consumer/provider
# compatibility the demo relies on, fault flags and env vars, graceful SIGTERM with a request in
# flight, and a short keep-alive load with wrk when it is installed.
set -u
B=${1:?usage: examples.sh BUILD_DIR}/examples
T=$(mktemp -d /tmp/sluice-examples.XXXXXX)
PIDS=()
fails=0
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

ok() { echo "ok   - $1"; }
bad() { echo "FAIL - $1"; fails=$((fails + 1)); }
check() { # check NAME GOT WANT
	if [ "$2" == "$3" ]; then ok "$1"; else bad "$1: got '$2', want '$3'"; fi
}

# start NAME LOG ARGS...: starts a service, waits (at most 5 s) for its startup line, sets PORT and PID.
start() {
	local log=$T/$2
	shift 2
	"$@" >"$log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	PORT=
	for _ in $(seq 50); do
		PORT=$(sed -n 's/.* listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log")
		[ -n "$PORT" ] && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	bad "$1 did not start: $(cat "$log")"
	return 1
}

# get URL -> "STATUS VERSION BODY"
get() {
	curl -s -m 5 -D "$T/h" -o "$T/b" -w '%{http_code}' "$1" >"$T/code"
	local v
	v=$(tr -d '\r' <"$T/h" | sed -n 's/^X-Version: //Ip')
	echo "$(cat "$T/code") $v $(cat "$T/b")"
}

# waitexit PID SECONDS -> exit status, or 124 when still running
waitexit() {
	for _ in $(seq $(($2 * 10))); do
		if ! kill -0 "$1" 2>/dev/null; then wait "$1"; return $?; fi
		sleep 0.1
	done
	return 124
}

for b in metadata-v1 metadata-v2 metadata-v3 profile-v1 profile-v2 web-v1; do
	[ -x "$B/$b" ] || { bad "missing binary $B/$b"; exit 1; }
done

# --- provider and consumer, both v2 ---
start metadata-v2 m2.log "$B/metadata-v2" --port 0 || exit 1
M2=$PORT M2PID=$PID
check "metadata v2 item" "$(get "http://127.0.0.1:$M2/items/42")" \
	'200 v2 {"id":"42","metadata":{"color":"red","size":"L"},"metadata_v2":[{"key":"color","value":"red"},{"key":"size","value":"L"}]}'
check "metadata v2 healthz" "$(get "http://127.0.0.1:$M2/healthz")" '200 v2 ok'
check "metadata v2 unknown path" "$(get "http://127.0.0.1:$M2/nope" | cut -d' ' -f1-2)" '404 v2'
check "metadata v2 bad id" "$(get "http://127.0.0.1:$M2/items/a%20b" | cut -d' ' -f1)" '400'
start profile-v2 p2.log env SLUICE_UPSTREAM_METADATA=127.0.0.1:$M2 "$B/profile-v2" --port 0 || exit 1
P2=$PORT
check "profile v2 via metadata v2" "$(get "http://127.0.0.1:$P2/profiles/42")" \
	'200 v2 {"id":"42","color":"red","version":"v2"}'
start web-v1 w1.log env SLUICE_UPSTREAM_PROFILE=127.0.0.1:$P2 "$B/web-v1" --port 0 || exit 1
check "web v1 via profile v2" "$(get "http://127.0.0.1:$PORT/?user=5")" \
	'200 v1 {"page":"home","title":"Welcome back","profile":{"id":"5","color":"red","version":"v2"},"version":"v1"}'

# --- keep-alive: two requests, one connection ---
n=$(curl -s -v -m 5 -o /dev/null -o /dev/null "http://127.0.0.1:$M2/items/1" "http://127.0.0.1:$M2/items/2" 2>&1 |
	grep -c 'Re-using existing connection')
check "keep-alive HTTP/1.1 reuses the connection" "$n" 1
n=$(curl -s -v -m 5 --http1.0 -H 'Connection: keep-alive' -o /dev/null -o /dev/null \
	"http://127.0.0.1:$M2/healthz" "http://127.0.0.1:$M2/healthz" 2>&1 | grep -c 'Re-using existing connection')
check "keep-alive HTTP/1.0 on request" "$n" 1
# Two pipelined requests in one write, answered in order on one connection.
exec 3<>/dev/tcp/127.0.0.1/$M2
printf 'GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
resp=$(timeout 5 cat <&3)
exec 3<&-
check "pipelined requests" "$(echo "$resp" | grep -o 'HTTP/1.1 200' | wc -l)-$(echo "$resp" | grep -o '"id":"[0-9]"' | tr -d '\n')" '2-"id":"1""id":"2"'

# --- the two-step example: which consumer survives which provider ---
start metadata-v1 m1.log "$B/metadata-v1" --port 0 || exit 1
M1=$PORT
check "metadata v1 item" "$(get "http://127.0.0.1:$M1/items/3")" '200 v1 {"id":"3","metadata":{"color":"red","size":"L"}}'
start metadata-v3 m3.log "$B/metadata-v3" --port 0 || exit 1
M3=$PORT
check "metadata v3 item" "$(get "http://127.0.0.1:$M3/items/3")" \
	'200 v3 {"id":"3","metadata_v2":[{"key":"color","value":"red"},{"key":"size","value":"L"}]}'
start profile-v1 p1a.log env SLUICE_UPSTREAM_METADATA=127.0.0.1:$M1 "$B/profile-v1" --port 0 || exit 1
check "profile v1 via metadata v1" "$(get "http://127.0.0.1:$PORT/profiles/3")" '200 v1 {"id":"3","color":"red","version":"v1"}'
start profile-v1 p1b.log env SLUICE_UPSTREAM_METADATA=127.0.0.1:$M3 "$B/profile-v1" --port 0 || exit 1
check "profile v1 breaks on metadata v3" "$(get "http://127.0.0.1:$PORT/profiles/3" | cut -d' ' -f1-2)" '502 v1'
start profile-v2 p2b.log env SLUICE_UPSTREAM_METADATA=127.0.0.1:$M3 "$B/profile-v2" --port 0 || exit 1
check "profile v2 reads metadata_v2 from v3" "$(get "http://127.0.0.1:$PORT/profiles/3")" '200 v2 {"id":"3","color":"red","version":"v2"}'
start profile-v2 p2c.log env SLUICE_UPSTREAM_METADATA=127.0.0.1:$M1 "$B/profile-v2" --port 0 || exit 1
check "profile v2 falls back to metadata from v1" "$(get "http://127.0.0.1:$PORT/profiles/3")" '200 v2 {"id":"3","color":"red","version":"v2"}'
start profile-v2 p2d.log env SLUICE_UPSTREAM_METADATA=127.0.0.1:1 "$B/profile-v2" --port 0 || exit 1
check "profile v2 with its upstream down" "$(get "http://127.0.0.1:$PORT/profiles/3" | cut -d' ' -f1)" '502'

# --- faults ---
start m-err m-err.log "$B/metadata-v2" --port 0 --error-rate 1 || exit 1
check "--error-rate 1 answers 500" "$(get "http://127.0.0.1:$PORT/items/1" | cut -d' ' -f1-2)" '500 v2'
check "--error-rate spares /healthz" "$(get "http://127.0.0.1:$PORT/healthz")" '200 v2 ok'
start m-err-env m-err-env.log env SLUICE_FAULT_ERROR_RATE=1 "$B/metadata-v1" --port 0 || exit 1
check "SLUICE_FAULT_ERROR_RATE=1 answers 500" "$(get "http://127.0.0.1:$PORT/items/1" | cut -d' ' -f1-2)" '500 v1'
start m-half m-half.log "$B/metadata-v2" --port 0 --error-rate 0.5 || exit 1
n500=0
for _ in $(seq 200); do
	[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/items/1")" == 500 ] && n500=$((n500 + 1))
done
if [ "$n500" -ge 60 ] && [ "$n500" -le 140 ]; then ok "--error-rate 0.5: $n500/200 errors"; else bad "--error-rate 0.5: $n500/200 errors"; fi
start m-lat m-lat.log "$B/metadata-v2" --port 0 --latency-ms 300 || exit 1
t=$(curl -s -m 5 -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/items/1")
if awk -v t="$t" 'BEGIN { exit !(t >= 0.3 && t < 2) }'; then ok "--latency-ms 300: ${t}s"; else bad "--latency-ms 300: ${t}s"; fi
start m-lat-env m-lat-env.log env SLUICE_FAULT_LATENCY_MS=200 "$B/metadata-v2" --port 0 || exit 1
t=$(curl -s -m 5 -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/items/1")
if awk -v t="$t" 'BEGIN { exit !(t >= 0.2 && t < 2) }'; then ok "SLUICE_FAULT_LATENCY_MS=200: ${t}s"; else bad "SLUICE_FAULT_LATENCY_MS=200: ${t}s"; fi
"$B/metadata-v2" --port 0 --crash-at-start >/dev/null 2>&1
check "--crash-at-start exits 1" "$?" 1
SLUICE_FAULT_CRASH=1 "$B/profile-v2" --port 0 >/dev/null 2>&1
check "SLUICE_FAULT_CRASH=1 exits 1" "$?" 1
"$B/web-v1" >/dev/null 2>&1
check "missing --port is a usage error" "$?" 2
"$B/web-v1" --port 0 --error-rate 2 >/dev/null 2>&1
check "--error-rate 2 is a usage error" "$?" 2

# --- logs: a startup line and one line per request ---
grep -q '^metadata v2 listening on 127.0.0.1:' "$T/m2.log" && ok "startup line" || bad "startup line: $(head -1 "$T/m2.log")"
grep -q ' GET /items/42 200 ' "$T/m2.log" && ok "request line" || bad "no request line in m2.log"

# --- keep-alive load (bounded: 2 s) ---
if command -v wrk >/dev/null; then
	out=$(timeout 20 wrk -t2 -c32 -d2s "http://127.0.0.1:$P2/profiles/7" 2>&1)
	reqs=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
	errs=$(echo "$out" | grep -cE 'Socket errors|Non-2xx')
	if [ "${reqs:-0}" -gt 1000 ] && [ "$errs" -eq 0 ]; then ok "wrk keep-alive load: $reqs requests, no errors"
	else bad "wrk keep-alive load: $out"; fi
fi

# --- graceful SIGTERM: stop accepting, finish the request in flight, exit 0 ---
start m-term m-term.log "$B/metadata-v2" --port 0 --latency-ms 1000 || exit 1
curl -s -m 5 -o "$T/inflight" -w '%{http_code}' "http://127.0.0.1:$PORT/items/9" >"$T/inflight.code" &
CURL=$!
sleep 0.3
kill -TERM "$PID"
sleep 0.2
curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT/healthz"
check "no new connections after SIGTERM (curl exit 7)" "$?" 7
wait "$CURL"
check "request in flight finished" "$(cat "$T/inflight.code")" 200
waitexit "$PID" 5
check "SIGTERM exit status" "$?" 0
# An idle keep-alive connection does not hold the shutdown.
start m-idle m-idle.log "$B/metadata-v2" --port 0 || exit 1
exec 4<>/dev/tcp/127.0.0.1/$PORT
kill -TERM "$PID"
waitexit "$PID" 3
check "SIGTERM with an idle keep-alive connection" "$?" 0
exec 4<&-
waitexit "$M2PID" 0; [ $? -eq 124 ] && ok "other services unaffected" || bad "metadata v2 died"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
