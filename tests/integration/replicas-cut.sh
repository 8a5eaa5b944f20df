#!/usr/bin/env bash
# Integration: replicas over PostgreSQL, what replicas.sh does not cover (issue 13).
#   Runs under tests/support/pg-cluster.sh (SLUICE_PG_URL, SLUICE_PG_DIR).
#   - Artifacts every replica can read: replica a (its own data directory) receives the
#     uploads and stops; replicas b and c share another data directory that never saw them;
#     a deploy through c is driven by b, which makes each artifact from the store's chunks
#     (digest checked) and promotes it.
#   - A network cut between the owner (b) and the database, through a TCP relay
#     (tcp-relay.py) the test freezes (SIGSTOP: a partitioned link) or kills (connections
#     reset, new ones refused): it behaves like a pause. With the local runtime b holds the
#     machine's instance directory, so c does not take over; b's lease lapses (status shows no
#     owner), its late writes are refused, and once the relay is back it reconnects, holds the
#     service in a new tenure and the deployment is promoted: nothing done twice, 0 failed
#     requests, no duplicate instance.
#   - An operator's rollback posted to c (not the owner) mid-canary: the abort is recorded once
#     and carried out by b.
# Ports: API 34080-34082, proxy admin 34085, the service 34211, the relay 34090.
# Usage: pg-cluster.sh run -- replicas-cut.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
S=$B/src/sluice
EX=$B/examples
HERE=$(cd "$(dirname "$0")" && pwd)
: "${SLUICE_PG_URL:?run under tests/support/pg-cluster.sh run -- $0 BUILD_DIR}"
TTL=${TTL:-3000}
T=$(mktemp -d /tmp/sluice-it-cut.XXXXXX)
DA=$T/a DB=$T/b
mkdir -p "$DA" "$DB"
export SLUICE_DATA="$DA"   # the CLI's admin token: a's first start wrote it (tokens are in the store)
RELAY_PORT=34090
# b reaches the database through the relay: same database, another port
PG_PORT=$(sed -n 's|.*@[^:/]*:\([0-9]*\)/.*|\1|p' <<<"$SLUICE_PG_URL")
VIA_RELAY=${SLUICE_PG_URL/:$PG_PORT\//:$RELAY_PORT\/}
declare -A PID PORT=([a]=34080 [b]=34081 [c]=34082) DIR=([a]=$DA [b]=$DB [c]=$DB) URL=([a]=$SLUICE_PG_URL [b]=$VIA_RELAY [c]=$SLUICE_PG_URL)
RELAY=0
pass=0 fail=0

ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
wait_until() { local t=$1; shift; for _ in $(seq $((t * 10))); do "$@" && return 0; sleep 0.1; done; return 1; }

relay_start() {
	python3 "$HERE/tcp-relay.py" "$RELAY_PORT" 127.0.0.1 "$PG_PORT" >>"$T/relay.log" 2>&1 &
	RELAY=$!
	wait_until 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$RELAY_PORT" 2>/dev/null || { echo "relay did not start"; exit 1; }
}

start() { # start NAME
	local n=$1
	"$S" server --data "${DIR[$n]}" --store "${URL[$n]}" --replica-id "$n" --lease-ttl "$TTL" \
		--listen "127.0.0.1:${PORT[$n]}" --proxy-admin 127.0.0.1:34085 >>"$T/$n.log" 2>&1 &
	PID[$n]=$!
	for _ in $(seq 100); do curl -sf -m 1 "http://127.0.0.1:${PORT[$n]}/v1/health" >/dev/null && return 0; sleep 0.1; done
	echo "replica $n did not start"; cat "$T/$n.log"; exit 1
}

cleanup() {
	set +e
	kill -CONT "$RELAY" 2>/dev/null
	for n in a b c; do kill -CONT "${PID[$n]:-0}" 2>/dev/null; done
	for n in c b a; do
		if curl -s -m 1 "http://127.0.0.1:${PORT[$n]}/v1/health" >/dev/null 2>&1; then
			SLUICE_SERVER=http://127.0.0.1:${PORT[$n]} "$S" shutdown --data-plane >/dev/null 2>&1
			break
		fi
	done
	sleep 1
	for n in a b c; do kill -TERM "${PID[$n]:-0}" 2>/dev/null; done
	kill -TERM "$RELAY" 2>/dev/null
	sleep 0.5
	pkill -9 -f "$T" 2>/dev/null
	if [ "$fail" -ne 0 ]; then for n in a b c; do echo "--- $n log"; tail -40 "$T/$n.log"; done; fi
	rm -rf "$T"
}
trap cleanup EXIT

cli() { SLUICE_SERVER=http://127.0.0.1:${PORT[c]} "$S" "$@"; }   # c never owns anything here
owner() { cli status metadata -o json 2>/dev/null | grep -o '"replica": "[^"]*"' | cut -d'"' -f4; }
no_owner() { cli status metadata -o json 2>/dev/null | grep -q '"owner": null'; }
epoch() { cli status metadata -o json 2>/dev/null | grep -o '"epoch": [0-9]*' | grep -o '[0-9]*$'; }
in_step() { cli status metadata -o json 2>/dev/null | grep -q '"state": "step"'; }
latest() { cli history metadata -o json 2>/dev/null | grep -m1 '"phase"' | grep -q "\"$1\""; }
promoted() { latest promoted; }
instances() { pgrep -fc "$DB/artifacts" || true; }
two_instances() { [ "$(instances)" -eq 2 ]; }
latest_id() { cli history metadata -o json | grep -m1 '"id"' | grep -o '[0-9]\+'; }
count_events() { cli events "$1" -o json | grep -c "\"type\": \"$2\"" || true; }
phase_is() { cli history metadata -o json 2>/dev/null | python3 -c '
import json, sys
h = json.load(sys.stdin)
h = h.get("deployments", h) if isinstance(h, dict) else h
print(next((d["phase"] for d in h if d["id"] == int(sys.argv[1])), ""))' "$1" | grep -qx "$2"; }
hex() { sha256sum "$1" | cut -d' ' -f1; }

cat >"$T/env.yaml" <<'Y'
kind: Environment
name: production
regions:
  - name: east
policy:
  allow_unknown_consumers: true
Y
cat >"$T/svc.yaml" <<'Y'
kind: Service
name: metadata
listen_port: 34211
health: {path: /healthz, interval: 200ms, timeout: 500ms}
instances: 2
drain_timeout: 2s
strategy: {steps: [10, 50, 100], step_duration: 2s, max_step_duration: 60s}
analysis: {method: threshold, min_requests: 10, max_error_rate: 0.05, max_error_rate_increase: 0.02, max_p99_latency: 1s, interval: 200ms}
Y

# --- artifacts: uploaded to a, deployed by b from the store
start a
SLUICE_SERVER=http://127.0.0.1:${PORT[a]} "$S" apply -f "$T/env.yaml" -f "$T/svc.yaml" >/dev/null
check "uploads and pushes through replica a" \
	bash -c "SLUICE_SERVER=http://127.0.0.1:${PORT[a]} '$S' release push metadata v1 --artifact '$EX/metadata-v1' >/dev/null &&
		 SLUICE_SERVER=http://127.0.0.1:${PORT[a]} '$S' release push metadata v2 --artifact '$EX/metadata-v2' >/dev/null"
kill -TERM "${PID[a]}"; wait "${PID[a]}" 2>/dev/null || true
relay_start
start b   # first: it holds $DB/instances (the local runtime) and takes the lease
start c
check "b and c's data directory has no artifact" test -z "$(ls -A "$DB/artifacts" 2>/dev/null)"
check "a deploy through c is promoted (b drives it from the store's copy)" cli deploy metadata v1 --wait --timeout 90
check "b owns the service" test "$(owner)" = b
check "b made v1's artifact from the store, byte for byte" cmp -s "$DB/artifacts/$(hex "$EX/metadata-v1")" "$EX/metadata-v1"
check "two instances run from b's data directory" wait_until 10 two_instances

# --- a network cut between b and the database: frozen, then killed
network_cut() { # network_cut freeze|kill VERSION
	local how=$1 version=$2
	"$S" load --url http://127.0.0.1:34211/items/1 --rate 100 --conns 4 --duration 120 >"$T/load-$how.txt" &
	local L=$!
	sleep 0.5
	cli deploy metadata "$version" >/dev/null
	wait_until 30 in_step || bad "$how: the canary reaches a step"
	local e0; e0=$(epoch)
	if [ "$how" = freeze ]; then kill -STOP "$RELAY"; else kill -TERM "$RELAY"; wait "$RELAY" 2>/dev/null || true; fi
	check "$how: b's lease lapses, nobody else can drive the local runtime (no owner)" wait_until $((TTL / 1000 + 10)) no_owner
	if [ "$how" = kill ]; then
		check "$how: b's API still answers while it cannot reach the database" curl -sf -m 2 "http://127.0.0.1:${PORT[b]}/v1/health" -o /dev/null
		check "$how: b answers a store read with an error, not with nothing" \
			bash -c "! SLUICE_SERVER=http://127.0.0.1:${PORT[b]} '$S' history metadata >/dev/null 2>&1"
	fi
	sleep $((TTL / 1000 + 1))
	if [ "$how" = freeze ]; then kill -CONT "$RELAY"; else relay_start; fi
	check "$how: b reconnects and the deployment of $version is promoted" wait_until 90 promoted
	local e1; e1=$(epoch)
	check "$how: b holds the service in a new tenure (epoch $e0 -> $e1)" test "$e1" -gt "$e0"
	check "$how: b is the owner again" test "$(owner)" = b
	local dep; dep=$(latest_id)
	check "$how: nothing done twice (one 'passed' per step: $(count_events "$dep" passed) of 3)" test "$(count_events "$dep" passed)" -eq 3
	check "$how: one 'promoted' event" test "$(count_events "$dep" promoted)" -eq 1
	check "$how: no duplicate instance" wait_until 20 two_instances
	kill -TERM $L 2>/dev/null || true; wait $L || true
	check "$how: 0 failed requests ($(grep -o 'requests [0-9]*' "$T/load-$how.txt" || echo none))" grep -q ' failed 0 ' "$T/load-$how.txt"
}
network_cut freeze v2
grep -q "fenced" "$T/b.log" && ok "freeze: b's late write was refused by the fence (its log)" ||
	echo "# freeze: b had no write in flight when the link froze (no fenced write in its log)"
network_cut kill v1

# --- an operator's rollback posted to c, which does not own the service
"$S" load --url http://127.0.0.1:34211/items/1 --rate 100 --conns 4 --duration 120 >"$T/load-rollback.txt" &
L=$!
sleep 0.5
cli deploy metadata v2 >/dev/null
wait_until 30 in_step || bad "rollback: the canary reaches a step"
dep=$(latest_id)
check "rollback: posted to c (not the owner)" cli rollback metadata
check "rollback: the deployment of v2 ends pre-empted" wait_until 60 phase_is "$dep" preempted
check "rollback: the abort is recorded once" test "$(count_events "$dep" aborted)" -eq 1
check "rollback: the rollback to v1 is promoted (carried out by b)" wait_until 60 promoted
check "rollback: b drove it" test "$(owner)" = b
check "rollback: v1 stays stable" bash -c "SLUICE_SERVER=http://127.0.0.1:${PORT[c]} '$S' status metadata -o json | grep -q '\"stable\": \"v1\"'"
check "rollback: no duplicate instance" wait_until 20 two_instances
kill -TERM $L 2>/dev/null || true; wait $L || true
check "rollback: 0 failed requests" grep -q ' failed 0 ' "$T/load-rollback.txt"

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
