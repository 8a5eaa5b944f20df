#!/usr/bin/env bash
# Integration: the events stream and the dashboard against the real server on loopback (ports
# 31470-31471, the service's proxy on 31481). The stream with curl: 401 without a token, a
# token scoped to another service sees nothing, Last-Event-ID replays, heartbeats, the 65th
# stream is answered 503; `sluice events --follow` (-o json, one object per line, exit 0 when
# promoted). Then headless Chromium driven by playwright-core (tests/integration/ui/ui.mjs): no
# console error, each new step on the page within 2 s of its event, no abort button for a read
# token, abort from the page with the admin token. Skips (77) only when chromium cannot start.
# Usage: ui.sh BUILD_DIR SOURCE_DIR [SHOTS_DIR]   (SHOTS_DIR: where the screenshots go)
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
SHOTS=${3:-$B/ui-shots}
S=$B/src/sluice
EX=$B/examples
command -v node >/dev/null && command -v npm >/dev/null || { echo "skip: node and npm are needed"; exit 77; }
CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
[ -n "$CHROMIUM" ] || { echo "skip: chromium is not installed (scripts/deps.sh test installs it)"; exit 77; }
export CHROMIUM
D=$(mktemp -d /tmp/sluice-it-ui.XXXXXX)
P=${SLUICE_UI_PORT:-31470} # the API; P+1 the proxy's admin, P+11 the service
export SLUICE_SERVER=http://127.0.0.1:$P
export SLUICE_DATA="$D/data"
M=$B/ui-node
if [ ! -d "$M/node_modules/playwright-core" ]; then
	mkdir -p "$M"
	cp "$SRC/tests/integration/ui/package.json" "$SRC/tests/integration/ui/package-lock.json" "$M/"
	(cd "$M" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || { echo "could not install playwright-core"; exit 1; }
fi
cp "$SRC/tests/integration/ui/ui.mjs" "$M/"
mkdir -p "$SHOTS"
PIDS=()
cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	"$S" shutdown --data-plane >/dev/null 2>&1
	for _ in $(seq 100); do pgrep -f "server --data $D" >/dev/null || break; sleep 0.1; done
	pkill -9 -f "$D" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log:"; tail -30 "$D/server.log"; exit 1; }

"$S" server --data "$D/data" --listen 127.0.0.1:$P --proxy-admin 127.0.0.1:$((P + 1)) >"$D/server.log" 2>&1 &
up() { curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null; }
for _ in $(seq 150); do up && break; sleep 0.1; done
up || fail "the server did not start"
ADMIN=$(cat "$D/data/admin.token")
cat >"$D/m.yaml" <<Y
kind: Environment
name: production
regions: [{name: eu}]
---
kind: Service
name: shop
listen_port: $((P + 11))
run:
  command: "{artifact}"
  args: ["--port", "{port}"]
health: {path: /healthz, interval: 500ms, timeout: 500ms}
instances: 1
drain_timeout: 1s
strategy:
  type: canary
  steps: [10, 50, 100]
  step_duration: 4s
  max_step_duration: 60s
analysis: {min_requests: 20, interval: 250ms}
bake: 1s
Y
"$S" apply -f "$D/m.yaml" >/dev/null
for v in 1 2 3; do "$S" release push shop v$v --artifact "$EX/metadata-v2" >/dev/null; done
"$S" deploy shop v1 --wait >/dev/null || fail "v1 was not promoted"
READ=$("$S" token create viewer --scope 'read:*:*' 2>/dev/null)
OTHER=$("$S" token create other --scope 'read:other:*' 2>/dev/null)

# --- the stream with curl ---
st=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$SLUICE_SERVER/v1/events/stream")
[ "$st" = 401 ] || fail "a stream without a token answered $st"
curl -sN -m 2 -H "Authorization: Bearer $ADMIN" -H 'Last-Event-ID: 0' "$SLUICE_SERVER/v1/events/stream" >"$D/replay.txt" || true
grep -q '^id: 1$' "$D/replay.txt" || fail "Last-Event-ID 0 did not replay the first event: $(head -c 300 "$D/replay.txt")"
grep -q '"service":"shop"' "$D/replay.txt" || fail "replayed events name no service"
n=$(grep -c '^data: ' "$D/replay.txt")
curl -sN -m 2 -H "Authorization: Bearer $ADMIN" -H 'Last-Event-ID: 3' "$SLUICE_SERVER/v1/events/stream" >"$D/replay3.txt" || true
grep -q '^id: 3$' "$D/replay3.txt" && fail "Last-Event-ID 3 replayed event 3"
grep -q '^id: 4$' "$D/replay3.txt" || fail "Last-Event-ID 3 did not start at event 4"
curl -sN -m 2 -H "Authorization: Bearer $OTHER" -H 'Last-Event-ID: 0' "$SLUICE_SERVER/v1/events/stream" >"$D/other.txt" || true
grep -q '^data: ' "$D/other.txt" && fail "a token scoped to another service saw shop's events"
grep -q 'sluice events' "$D/other.txt" || fail "the other token's stream did not open"
st=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "Authorization: Bearer $OTHER" "$SLUICE_SERVER/v1/events/stream?service=shop")
[ "$st" = 403 ] || fail "?service=shop with a token for another service answered $st"
echo "stream: $n events replayed, scopes filter, 401/403 ok"

# 64 streams are served, the 65th is refused with 503 (and one closing frees a place)
SP=()
for i in $(seq 64); do
	curl -sN -m 90 -H "Authorization: Bearer $READ" "$SLUICE_SERVER/v1/events/stream" >/dev/null 2>&1 &
	SP+=($!)
done
# wait until the 64 are connected (a probe before that would take a place from one of them)
for _ in $(seq 300); do
	[ "$(ss -Htn state established "( dport = :$P )" | wc -l)" -ge 64 ] && break
	sleep 0.1
done
sleep 0.5
for _ in $(seq 20); do
	st=$(curl -s -o "$D/503.txt" -w '%{http_code}' -m 0.5 -H "Authorization: Bearer $READ" "$SLUICE_SERVER/v1/events/stream" || true)
	[ "$st" = 503 ] && break
	sleep 0.2
done
[ "$st" = 503 ] || fail "the 65th stream answered $st"
grep -q 'too many event streams' "$D/503.txt" || fail "the 503 does not say why: $(cat "$D/503.txt")"
kill "${SP[@]}" 2>/dev/null; wait "${SP[@]}" 2>/dev/null || true
for _ in $(seq 50); do
	st=$(curl -s -o /dev/null -w '%{http_code}' -m 1 -H "Authorization: Bearer $READ" "$SLUICE_SERVER/v1/events/stream" || true)
	[ "$st" = 200 ] && break # served again (then cut by -m)
	sleep 0.1
done
[ "$st" = 200 ] || fail "streams were not served again after the others closed ($st)"
echo "stream: the 65th is refused with 503"

# --- the dashboard's files ---
hdr=$(curl -s -D - -o "$D/index.html" "$SLUICE_SERVER/ui")
echo "$hdr" | grep -qi "^Content-Security-Policy: default-src 'none'; script-src 'self'" || fail "/ui has no strict CSP: $hdr"
echo "$hdr" | grep -qi "frame-ancestors 'none'" || fail "/ui allows framing"
echo "$hdr" | grep -qi '^X-Content-Type-Options: nosniff' || fail "/ui has no nosniff"
grep -q '<script' "$D/index.html" && grep -q '<script>' "$D/index.html" && fail "index.html has an inline script"
etag=$(curl -s -D - -o /dev/null "$SLUICE_SERVER/ui/app.js" | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}')
[ -n "$etag" ] || fail "app.js has no ETag"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$SLUICE_SERVER/ui/app.js")
[ "$st" = 304 ] || fail "If-None-Match answered $st, not 304"
st=$(curl -s --path-as-is -o /dev/null -w "%{http_code}" "$SLUICE_SERVER/ui/../../etc/passwd")
[ "$st" = 404 ] || [ "$st" = 400 ] || fail "a path outside the files answered $st"
curl -s "$SLUICE_SERVER/ui/vendor/uPlot.LICENSE.txt" | grep -q 'MIT License' || fail "uPlot's license is not served"
echo "ui files: CSP, nosniff, ETag/304 ok"

# --- a canary in flight under load, followed by the browser ---
"$S" load --url http://127.0.0.1:$((P + 11))/items/1 --rate 100 --conns 4 --duration 300 >"$D/load.txt" 2>&1 &
PIDS+=($!)
sleep 1
DEP=$("$S" deploy shop v2 -o json | awk -F': ' '/"id"/ {gsub(/[ ,]/, "", $2); print $2; exit}')
[ -n "$DEP" ] || fail "no deployment id"
set +e
(cd "$M" && timeout 150 node ui.mjs "$SLUICE_SERVER" "$ADMIN" "$READ" "$DEP" "$SHOTS")
rc=$?
set -e
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || fail "the browser test failed (exit $rc)"
"$S" events "$DEP" -o json >"$D/aborted.json"
grep -q 'aborted by token admin' "$D/aborted.json" || fail "the abort is not recorded with its token"
phase=$(awk -F'"' '/"phase"/ {print $4; exit}' "$D/aborted.json")
[ "$phase" = rolled_back ] || fail "the aborted deployment ended $phase"

# --- sluice events --follow ---
DEP3=$("$S" deploy shop v3 -o json | awk -F': ' '/"id"/ {gsub(/[ ,]/, "", $2); print $2; exit}')
set +e
timeout 120 "$S" events "$DEP3" --follow -o json >"$D/follow.txt"
rc=$?
set -e
[ $rc -eq 0 ] || fail "events --follow of a promoted deployment exited $rc: $(tail -3 "$D/follow.txt")"
while read -r line; do
	echo "$line" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' || fail "not one JSON object per line: $line"
done <"$D/follow.txt"
grep -q '"type":"step"' "$D/follow.txt" || fail "--follow showed no step"
grep -q '"type":"done"' "$D/follow.txt" || fail "--follow did not run to the end"
echo "events --follow: $(wc -l <"$D/follow.txt") events, exit 0 when promoted"
echo "screenshots in $SHOTS"
echo "ui: ok"
