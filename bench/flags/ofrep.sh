#!/usr/bin/env bash
# OFREP single evaluations over keep-alive HTTP on loopback: the real server, a flag with a
# fractional rule inside an "if", an evaluate-only token, wrk POSTing one evaluation context per
# request. Prints requests/s of each round and their median. Bounded: ROUNDS rounds of SECONDS.
# Usage: bench/flags/ofrep.sh BUILD_DIR [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
ROUNDS=${2:-3} SECS=${3:-5} CONNS=${4:-32}
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/deps.sh test)"; exit 1; }
D=$(mktemp -d /tmp/sluice-bench-ofrep.XXXXXX)
PORT=${OFREP_BENCH_PORT:-18870}
export SLUICE_SERVER=http://127.0.0.1:$PORT SLUICE_DATA=$D/data SLUICE_CONFIG=$D/none
cleanup() { "$S" shutdown >/dev/null 2>&1 || true; sleep 0.3; pkill -9 -f "$D" 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
"$S" server --data "$D/data" --listen 127.0.0.1:$PORT --proxy-admin 127.0.0.1:$((PORT + 1)) \
	--log-level warn >"$D/server.log" 2>&1 &
for _ in $(seq 100); do curl -sf -m 1 "$SLUICE_SERVER/v1/health" >/dev/null && break; sleep 0.05; done
cat >"$D/m.yaml" <<Y
kind: Environment
name: production
regions: [{name: local}]
Y
"$S" apply -f "$D/m.yaml" >/dev/null
cat >"$D/flags.json" <<J
{"flags": {"checkout": {"state": "ENABLED", "variants": {"new": true, "old": false},
  "defaultVariant": "old",
  "targeting": {"if": [{"in": ["@example.com", {"var": "email"}]}, "new",
                       {"fractional": [["new", 20], ["old", 80]]}]}}}}
J
"$S" flags apply --env production "$D/flags.json" >/dev/null
TOKEN=$("$S" token create bench-app --scope 'evaluate:*:production' -o json |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
cat >"$D/post.lua" <<L
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"context":{"targetingKey":"user-' .. n .. '","email":"u' .. n .. '@mail.test"}}')
end
L
URL=$SLUICE_SERVER/ofrep/v1/evaluate/flags/checkout
code=$(curl -s -o "$D/one.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	-d '{"context":{"targetingKey":"a"}}' "$URL")
[ "$code" = 200 ] || { echo "the evaluation answered $code: $(cat "$D/one.json")"; exit 1; }
rates=()
for r in $(seq "$ROUNDS"); do
	out=$(timeout $((SECS + 20)) wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$D/post.lua" "$URL")
	rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
	non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
	echo "round $r: $rps requests/s${non2xx:+ (non-2xx: $non2xx)}"
	rates+=("$rps")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "OFREP single evaluations: median $median requests/s over $ROUNDS rounds of ${SECS} s, $CONNS connections, load $(cut -d' ' -f1-3 /proc/loadavg)"
